"""Starting and stopping a server: listen, wait for SIGTERM/SIGINT, drain, stop.

Graceful shutdown, in order: the listening socket is closed (no new connections), ``/health``
turns 503 and new requests on open connections get 503, requests in flight run to their end
(up to ``shutdown_timeout_s``; streams included), then idle connections are closed. The
caller then closes the model client, the trace file and the cache.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

logger = logging.getLogger(__name__)


@dataclass
class RunningServer:
    """A started application: where it listens and how to stop it."""

    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        """The base URL for OpenAI clients (ends in ``/v1``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    async def stop(self) -> None:
        """Stop accepting, finish the requests in flight, close connections."""
        await self.runner.cleanup()


async def start(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    shutdown_timeout_s: float = 60.0,
    access_log: bool = False,
) -> RunningServer:
    """Listen on ``host:port`` (port 0: any free port; see ``RunningServer.port``)."""
    runner = web.AppRunner(
        app,
        # A client that goes away cancels its request, so its pipeline stops spending.
        handler_cancellation=True,
        shutdown_timeout=shutdown_timeout_s,
        access_log=logging.getLogger("archon.serve.access") if access_log else None,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = runner.addresses[0]
    return RunningServer(runner, host, int(bound[1]))


async def serve(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    shutdown_timeout_s: float = 60.0,
    access_log: bool = False,
    on_ready: Callable[[RunningServer], None] | None = None,
    on_stopping: Callable[[], None] | None = None,
) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully (see the module)."""
    running = await start(
        app, host, port, shutdown_timeout_s=shutdown_timeout_s, access_log=access_log
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        if on_ready is not None:
            on_ready(running)
        await stop.wait()
        if on_stopping is not None:
            on_stopping()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await running.stop()
