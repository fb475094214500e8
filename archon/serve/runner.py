"""Starting and stopping a server: listen, wait for SIGTERM/SIGINT, drain, stop.

Graceful shutdown, in order: the listening socket is closed (no new connections), ``/health``
turns 503 and new requests on open connections get 503, requests in flight run to their end
(up to ``shutdown_timeout_s``; streams included), then idle connections are closed. The
caller then closes the model client, the trace file and the cache.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from archon.serve.app import STATE
from archon.serve.guard import ConnectionGuard, ConnectionLimits, LogLimiter, install_log_limiter

logger = logging.getLogger(__name__)

KEEPALIVE_S = 75.0
"""An idle kept-alive connection is closed after this long."""

FD_RESERVE = 64
"""File descriptors kept free for the cache, the trace, model calls and logs."""


@dataclass
class RunningServer:
    """A started application: where it listens and how to stop it."""

    runner: web.AppRunner
    host: str
    port: int
    remove_log_limiter: Callable[[], None] = field(default=lambda: None, repr=False)

    @property
    def url(self) -> str:
        """The base URL for OpenAI clients (ends in ``/v1``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    async def stop(self) -> None:
        """Stop accepting, finish the requests in flight, close connections."""
        try:
            await self.runner.cleanup()
        finally:
            self.remove_log_limiter()


class GuardedSite(web.BaseSite):
    """A TCP listening socket whose connections go through a :class:`ConnectionGuard`."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        guard: Callable[[], asyncio.BaseProtocol],
    ) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._guard = guard

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        # a deep accept queue: under a burst of connections, a dropped SYN costs a client a
        # one-second retransmit
        self._server = await loop.create_server(self._guard, self._host, self._port, backlog=1024)


def connection_cap(wanted: int) -> int:
    """``wanted``, lowered so that open connections cannot use up the file descriptors."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - FD_RESERVE))


async def start(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    shutdown_timeout_s: float = 60.0,
    access_log: bool = False,
) -> RunningServer:
    """Listen on ``host:port`` (port 0: any free port; see ``RunningServer.port``).

    Connections are guarded by the application's settings (``header_timeout_s``,
    ``max_connections``), and error logs are rate-limited while the server runs.
    """
    handler_options: dict[str, Any] = {
        "keepalive_timeout": KEEPALIVE_S,
        "access_log": logging.getLogger("archon.serve.access") if access_log else None,
    }
    runner = web.AppRunner(
        app,
        # A client that goes away cancels its request, so its pipeline stops spending.
        handler_cancellation=True,
        shutdown_timeout=shutdown_timeout_s,
        **handler_options,
    )
    await runner.setup()
    settings = app[STATE].settings
    limits = ConnectionLimits(
        header_timeout_s=settings.header_timeout_s,
        max_connections=connection_cap(settings.max_connections),
    )
    assert runner.server is not None
    guard = ConnectionGuard(runner.server, limits, handler_options)
    site = GuardedSite(runner, host, port, guard)
    remove = install_log_limiter(LogLimiter())
    try:
        await site.start()
    except OSError:
        remove()
        await runner.cleanup()
        raise
    bound = runner.addresses[0]
    return RunningServer(runner, host, int(bound[1]), remove)


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
