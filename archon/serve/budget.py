"""Budget accounting and admission for a server.

Meters nest as they do in the runtime: each pipeline run (one choice) has its query meter
(the pipeline's own ``budget``), whose parent is the request's meter (``extra_body.archon``),
whose parent is the server's meter (``--budget-calls``, ``--budget-usd``, ...). A reservation
must fit in all three, so the server-wide limit holds however many requests run at once.

With a window (``--budget-window``) the server meter starts afresh every window; calls still
in flight settle on the meter they reserved from.

:class:`Admission` bounds the requests running at once and those waiting for a slot; a
request beyond both is refused at once (429) instead of queueing without bound.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from archon.errors import ArchonError
from archon.ir import Budget
from archon.runtime import BudgetExceeded, Meter
from archon.serve.errors import RATE_LIMIT, ApiError

NO_WINDOW_RETRY_AFTER_S = 3600
"""Retry-After sent when a server budget without a window is spent (it never refills; more
than two minutes, so the official clients do not wait for it)."""


class ServerBudget:
    """The server-wide meter, optionally renewed every ``window_s`` seconds.

    Args:
        budget: limits on calls, tokens and USD over all requests (``seconds`` is refused:
            use the per-request ``max_seconds`` or the pipeline's budget).
        window_s: renew the meter this often (None: one budget for the server's life).
    """

    def __init__(
        self,
        budget: Budget | None = None,
        *,
        window_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        budget = budget or Budget()
        if budget.seconds is not None:
            raise ArchonError("a server budget limits calls, tokens or usd, not seconds")
        if window_s is not None and window_s <= 0:
            raise ArchonError("the budget window must be positive")
        self.budget = budget
        self.window_s = window_s
        self._clock = clock
        self._started = clock()
        self._meter = Meter(budget, scope="server", clock=clock)

    def meter(self) -> Meter:
        """The meter requests reserve from now (a fresh one once the window has passed)."""
        if self.window_s is not None:
            elapsed = self._clock() - self._started
            if elapsed >= self.window_s:
                self._started += self.window_s * math.floor(elapsed / self.window_s)
                self._meter = Meter(self.budget, scope="server", clock=self._clock)
        return self._meter

    @property
    def final(self) -> bool:
        """Whether a spent budget stays spent (no window)."""
        return self.window_s is None

    def retry_after_s(self) -> int:
        """Seconds until the budget is renewed (a long hint when it never is)."""
        if self.window_s is None:
            return NO_WINDOW_RETRY_AFTER_S
        left = self.window_s - (self._clock() - self._started)
        return max(1, math.ceil(left))

    def check(self) -> None:
        """Raise :class:`BudgetExceeded` (scope ``server``) when a limit is already used up,
        so that a request is refused before it starts anything."""
        meter = self.meter()
        spent, b = meter.spent, self.budget
        for limit, allowed, used in (
            ("calls", b.calls, spent.calls),
            ("tokens", b.tokens, spent.tokens),
            ("usd", b.usd, spent.usd),
        ):
            if allowed is not None and used >= allowed:
                raise BudgetExceeded(limit, "server", float(allowed), spent, meter.seconds)

    def remaining(self) -> dict[str, float]:
        """What is left of each limit that is set (for /metrics)."""
        meter = self.meter()
        spent, b = meter.spent, self.budget
        left: dict[str, float] = {}
        if b.calls is not None:
            left["calls"] = max(0, b.calls - spent.calls)
        if b.tokens is not None:
            left["tokens"] = max(0, b.tokens - spent.tokens)
        if b.usd is not None:
            left["usd"] = max(0.0, b.usd - spent.usd)
        return left


class Admission:
    """At most ``max_running`` requests run at once and ``max_waiting`` wait for a slot.

    Use ``async with admission.slot(): ...`` around a request's work; it raises a 429
    :class:`~archon.serve.errors.ApiError` with ``Retry-After`` when both are full.
    """

    def __init__(self, max_running: int, max_waiting: int) -> None:
        if max_running < 1 or max_waiting < 0:
            raise ArchonError("max concurrency must be >= 1 and the queue >= 0")
        self.max_running = max_running
        self.max_waiting = max_waiting
        self.running = 0
        self.waiting = 0
        self._slots = asyncio.Semaphore(max_running)
        self._mean_s = 1.0  # running mean of request durations, for Retry-After

    def retry_after_s(self) -> int:
        """A hint: about one request's duration."""
        return max(1, math.ceil(self._mean_s))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a running slot for the duration of the block."""
        if self.running + self.waiting >= self.max_running + self.max_waiting:
            raise ApiError(
                429,
                f"the server is at capacity ({self.running} requests running,"
                f" {self.waiting} waiting); retry shortly",
                type=RATE_LIMIT,
                code="queue_full",
                headers={"Retry-After": str(self.retry_after_s())},
            )
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        started = time.monotonic()
        try:
            yield
        finally:
            self.running -= 1
            self._slots.release()
            self._mean_s = 0.9 * self._mean_s + 0.1 * (time.monotonic() - started)
