"""A loopback OpenAI-compatible server for tests: records what it receives, answers as told.

It runs in its own thread and event loop, so both async tests and CLI tests (which call
``asyncio.run`` themselves) can talk to it. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Seen:
    """One request the server received."""

    path: str
    authorization: str | None
    body: dict[str, Any]


@dataclass
class FakeServer:
    """What to answer: ``text`` as a completion, or ``status`` + ``raw`` bytes, or nothing
    for ``hang_s`` seconds. ``seen`` lists every request."""

    port: int = 0
    text: str = "hello from the fake server"
    status: int = 200
    raw: bytes | None = None
    hang_s: float = 0.0
    redirect: str | None = None
    seen: list[Seen] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def authorizations(self) -> list[str | None]:
        return [s.authorization for s in self.seen]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        self.seen.append(Seen(request.path, request.headers.get("Authorization"), body))
        if self.hang_s:
            await asyncio.sleep(self.hang_s)
        if self.redirect is not None:
            return web.Response(status=307, headers={"Location": self.redirect})
        if self.raw is not None or self.status != 200:
            return web.Response(status=self.status, body=self.raw or b"")
        reply = {
            "choices": [
                {"message": {"role": "assistant", "content": self.text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4},
        }
        return web.Response(text=json.dumps(reply), content_type="application/json")


def free_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve(**settings: Any) -> Iterator[FakeServer]:
    """Run a :class:`FakeServer` on a free loopback port for the ``with`` block."""
    server = FakeServer(**settings)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner: web.AppRunner | None = None

    async def start() -> None:
        nonlocal runner
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", server.handle)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    ready.wait(10)
    try:
        yield server
    finally:
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
