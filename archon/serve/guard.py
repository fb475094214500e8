"""Connection guards: request-header deadlines, a cap on open connections, and a log
filter that keeps floods of similar error lines short.

:class:`ConnectionGuard` is the protocol factory of the listening socket. Each accepted
connection is wrapped in a :class:`GuardedConnection` that hands the bytes to aiohttp's own
request handler and adds what aiohttp lacks: a connection must send complete request headers
within ``header_timeout_s`` (of opening, or of the first byte of a later request on a
kept-alive connection), and at most ``max_connections`` are open at once. A connection over
the cap closes the longest-waiting connection that runs no request (one still sending its
headers, or an idle kept-alive one) to make room, so slow or idle connections cannot lock
new clients out; only when every open connection runs a request is the new one closed.
Malformed HTTP gets an OpenAI-shaped JSON 400 rather than aiohttp's plain-text page.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_request import BaseRequest

from archon.serve.errors import SERVER, ApiError, error_response

logger = logging.getLogger(__name__)

LIMITED_LOGGERS = (
    "asyncio",
    "aiohttp.server",
    "aiohttp.web",
    "archon.serve.app",
    "archon.serve.guard",
)
"""Loggers whose error lines are rate-limited while a server runs."""


@dataclass(frozen=True)
class ConnectionLimits:
    """Limits on the connections of one listening socket.

    Attributes:
        header_timeout_s: seconds a connection has to send complete request headers.
        max_connections: connections open at once; one more closes the longest-waiting
            connection that runs no request, or is closed itself when all run one.
    """

    header_timeout_s: float = 10.0
    max_connections: int = 512


class _JsonErrorHandler(web.RequestHandler):
    """aiohttp's request handler, answering malformed HTTP with OpenAI-shaped JSON."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)
        if status >= 500:
            error = ApiError(status, "internal server error", type=SERVER, code="internal_error")
        else:
            text = f"malformed HTTP request: {message}" if message else "malformed HTTP request"
            error = ApiError(status, text[:300], code="bad_http_request")
        response = error_response(error)
        response.force_close()
        return response


class ConnectionGuard:
    """The protocol factory of a listening socket (see the module)."""

    def __init__(
        self,
        server: web.Server,
        limits: ConnectionLimits,
        handler_options: dict[str, Any],
    ) -> None:
        self.server = server
        self.limits = limits
        self.open = 0
        self.evicted = 0
        self._options = handler_options
        # Open connections that run no request, the longest-waiting first.
        self._idle: OrderedDict[GuardedConnection, None] = OrderedDict()

    def __call__(self) -> GuardedConnection:
        return GuardedConnection(self)

    def admit(self, connection: GuardedConnection) -> bool:
        """Count a new connection in, closing the longest-waiting connection that runs no
        request when the cap is reached; False when every open connection runs one."""
        if self.open >= self.limits.max_connections:
            if not self._idle:
                return False
            oldest, _ = self._idle.popitem(last=False)
            self.evicted += 1
            oldest.evict()  # released now: its connection_lost comes later
        self.open += 1
        self._idle[connection] = None
        return True

    def release(self, connection: GuardedConnection) -> None:
        """Count a closed connection out."""
        self._idle.pop(connection, None)
        self.open -= 1

    def busy(self, connection: GuardedConnection, busy: bool) -> None:
        """A request on ``connection`` started (``busy``) or finished."""
        if busy:
            self._idle.pop(connection, None)
        else:
            self._idle[connection] = None
            self._idle.move_to_end(connection)

    def handler(self) -> web.RequestHandler:
        """A new aiohttp request handler for an accepted connection."""
        return _JsonErrorHandler(self.server, loop=asyncio.get_running_loop(), **self._options)


class GuardedConnection(asyncio.Protocol):
    """One connection: aiohttp's handler plus the header deadline and the cap."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._inner: web.RequestHandler | None = None
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._busy = False
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if not self._guard.admit(self):
            logger.warning(
                "refused a connection: %d are open, each running a request (max_connections)",
                self._guard.limits.max_connections,
            )
            transport.abort()
            return
        self._counted = True
        self._inner = self._guard.handler()
        self._inner.connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._counted:
            self._counted = False
            self._guard.release(self)
        if self._inner is not None:
            self._inner.connection_lost(exc)
            self._inner = None

    def evict(self) -> None:
        """Close this connection (it runs no request) to make room for a new one."""
        self._disarm()
        if self._counted:
            self._counted = False
            self._guard.release(self)
        logger.info(
            "closed a connection that ran no request to make room for a new one (max_connections)"
        )
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if not self._busy and self._deadline is None:
            self._arm()  # the first bytes of a further request on a kept-alive connection
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._inner is not None:
            self._inner.eof_received()
        return None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def request_started(self) -> None:
        """The headers of a request are complete: its handler runs."""
        self._busy = True
        self._disarm()
        if self._counted:
            self._guard.busy(self, True)

    def request_finished(self) -> None:
        """The handler of the current request returned."""
        self._busy = False
        if self._counted:
            self._guard.busy(self, False)

    def _arm(self) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._guard.limits.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self._transport is not None and not self._busy:
            logger.info(
                "closed a connection without complete request headers after %g s",
                self._guard.limits.header_timeout_s,
            )
            self._transport.abort()


def guarded(transport: asyncio.BaseTransport | None) -> GuardedConnection | None:
    """The guard of a request's connection, when it has one."""
    protocol = transport.get_protocol() if transport is not None else None
    return protocol if isinstance(protocol, GuardedConnection) else None


# --- rate-limited logging -----------------------------------------------------------------


@dataclass
class _Window:
    start: float
    passed: int = 0
    suppressed: int = 0
    args: Any = None  # of the last record held back


class LogLimiter(logging.Filter):
    """Lets at most ``per_interval`` records of one kind through per ``interval_s``.

    Records are of one kind when they share the logger, the level and the message template.
    The first record of a kind after some were held back says how many were.
    """

    MAX_KINDS = 1024

    def __init__(
        self,
        per_interval: int = 5,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.per_interval = per_interval
        self.interval_s = interval_s
        self._clock = clock
        self._windows: dict[tuple[str, int, str], _Window] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        window = self._windows.get(key)
        if window is None or now - window.start >= self.interval_s:
            if len(self._windows) >= self.MAX_KINDS:
                self._windows.clear()
            self._windows[key] = _Window(now, passed=1)
            if window is not None and window.suppressed:
                record.msg = (
                    f"{record.msg} [{window.suppressed} similar messages suppressed"
                    f" in {self.interval_s:g} s]"
                )
            return True
        if window.passed < self.per_interval:
            window.passed += 1
            return True
        window.suppressed += 1
        window.args = record.args
        return False

    def flush(self) -> None:
        """Log how many records were held back and not yet reported."""
        for (name, level, msg), window in list(self._windows.items()):
            if window.suppressed:
                window.suppressed = 0
                try:
                    text = msg % window.args if window.args else msg
                except (TypeError, ValueError):
                    text = msg
                logging.getLogger(name).log(
                    level, "%s [further similar messages suppressed]", text[:200]
                )
        self._windows.clear()


def install_log_limiter(
    limiter: LogLimiter, names: Iterable[str] = LIMITED_LOGGERS
) -> Callable[[], None]:
    """Add ``limiter`` to the loggers ``names``; returns what removes it again."""
    loggers = [logging.getLogger(name) for name in names]
    for each in loggers:
        each.addFilter(limiter)

    def remove() -> None:
        for each in loggers:
            each.removeFilter(limiter)
        limiter.flush()

    return remove
