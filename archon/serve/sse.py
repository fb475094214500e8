"""Server-Sent Events output: ``data: <json>`` events, ``: comment`` keep-alives, ``[DONE]``.

The response is started lazily, on the first thing to send: a request that fails before
anything was produced (a budget refused at once, a node failing quickly) still gets a proper
HTTP status and JSON error instead of an error inside a 200 stream.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    # Reverse proxies (nginx) must pass events through as they come, not buffer them.
    "X-Accel-Buffering": "no",
}


def event(data: Mapping[str, Any]) -> bytes:
    """One SSE event carrying ``data`` as JSON."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


DONE = b"data: [DONE]\n\n"


def comment(text: str) -> bytes:
    """An SSE comment line (clients ignore it; it keeps proxies and sockets from timing out)."""
    return f": {text}\n\n".encode()


class EventStream:
    """An SSE response to ``request``, started on the first write."""

    def __init__(self, request: web.Request, headers: Mapping[str, str] | None = None) -> None:
        self._request = request
        self.response = web.StreamResponse(status=200, headers={**HEADERS, **(headers or {})})
        self.started = False

    async def start(self, first: bytes = b"") -> None:
        """Send the headers (and ``first``) unless already started."""
        if not self.started:
            self.started = True
            await self.response.prepare(self._request)
            if first:
                await self.response.write(first)

    async def write(self, data: bytes) -> None:
        await self.start()
        await self.response.write(data)

    async def close(self) -> None:
        """``data: [DONE]`` and the end of the body."""
        await self.write(DONE)
        await self.response.write_eof()
