"""A fake OpenAI-compatible server on loopback, for tests of clients and of ``archon serve``.

It answers ``POST /v1/chat/completions`` after ``latency_s`` with ``reply`` (``{query}`` is
the last user message), plain or streamed (``stream: true``: SSE chunks of a few characters
and a usage chunk when ``stream_options.include_usage`` is set), and counts requests::

    async with FakeOpenAIServer(latency_s=0.2) as fake:
        ...  # point a client at fake.url (ends in /v1)
        assert fake.received == 3

``on_request(request, body)`` sees every request first (its headers, its JSON body); a
response it returns is sent instead of the built-in one, so a test can script replies,
failures or a dropped connection per request (the client contract does).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from aiohttp import web

OnRequest = Callable[[web.Request, dict[str, Any]], Awaitable[web.StreamResponse | None]]
"""A hook called with each request and its parsed body; a response it returns is sent."""


class FakeOpenAIServer:
    """See the module docstring. ``fail_status`` answers every request with that status;
    ``supports_n`` False ignores ``n`` and always answers one choice (as some servers do);
    ``"reject"`` answers a request with ``n > 1`` with HTTP 400."""

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        reply: str = "answer to {query}",
        chunk_chars: int = 4,
        fail_status: int | None = None,
        supports_n: bool | str = True,
        on_request: OnRequest | None = None,
    ) -> None:
        self.latency_s = latency_s
        self.reply = reply
        self.chunk_chars = chunk_chars
        self.fail_status = fail_status
        self.supports_n = supports_n
        self.on_request = on_request
        self.received = 0
        self.in_flight = 0
        self.bodies: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAIServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _text(self, body: dict[str, Any]) -> str:
        users = [m["content"] for m in body.get("messages", []) if m.get("role") == "user"]
        return self.reply.replace("{query}", users[-1] if users else "")

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body: dict[str, Any] = await request.json()
        self.received += 1
        self.bodies.append(body)
        self.in_flight += 1
        try:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            if self.on_request is not None:
                scripted = await self.on_request(request, body)
                if scripted is not None:
                    return scripted
            if self.fail_status is not None:
                error = {"error": {"message": "fake failure", "type": "server_error"}}
                return web.json_response(error, status=self.fail_status)
            text = self._text(body)
            asked = max(1, int(body.get("n") or 1))
            if asked > 1 and self.supports_n == "reject":
                error = {"error": {"message": "n must be 1", "type": "invalid_request_error"}}
                return web.json_response(error, status=400)
            choices = asked if self.supports_n is True else 1
            if body.get("stream"):
                return await self._stream(request, body, text)
            return web.json_response(
                {
                    "id": "fake",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", ""),
                    "choices": [
                        {
                            "index": i,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": _nth(text, i, choices)},
                        }
                        for i in range(choices)
                    ],
                    "usage": _usage(text, choices),
                }
            )
        finally:
            self.in_flight -= 1

    async def _stream(
        self, request: web.Request, body: dict[str, Any], text: str
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(data: dict[str, Any]) -> None:
            await response.write(f"data: {json.dumps(data)}\n\n".encode())

        base = {"id": "fake", "object": "chat.completion.chunk", "created": 0, "model": "m"}
        await send({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
        for start in range(0, len(text), self.chunk_chars):
            piece = text[start : start + self.chunk_chars]
            await send({**base, "choices": [{"index": 0, "delta": {"content": piece}}]})
        await send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            await send({**base, "choices": [], "usage": _usage(text)})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _usage(text: str, choices: int = 1) -> dict[str, int]:
    completion = max(1, len(text) // 4) * choices
    return {"prompt_tokens": 10, "completion_tokens": completion, "total_tokens": 10 + completion}


def _nth(text: str, index: int, choices: int) -> str:
    """Choice ``index`` of ``choices``: the reply itself when there is one, numbered else."""
    return text if choices == 1 else f"{text} #{index}"
