"""Hard budgets: reserve-then-settle metering of calls, tokens, USD and seconds.

Before a model call the runtime *reserves* an upper bound of what the call may spend (one
call, the estimated prompt tokens plus ``max_tokens``, and the USD those cost when the price
is known); after the call it *settles* the reservation with the actual usage. A reservation
that would not fit next to what is spent and what other calls have reserved waits for those
calls to settle, and fails with :class:`BudgetExceeded` only when it cannot fit even then. So
concurrent calls can never overshoot a limit together (as long as the estimate bounds the
real use; a provider that reports more than ``max_tokens`` can still push the total over,
and the next reservation then fails).

Meters nest: a query's meter has the run's meter (shared by every query of ``run_many``) as
its parent, and a reservation must fit in both. Cache hits are free and never metered.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from archon.errors import ArchonError
from archon.ir import Budget
from archon.values import Message, Usage

_TOKENS_PER_MESSAGE = 8
_BYTES_PER_TOKEN = 3


def estimate_prompt_tokens(messages: Sequence[Message]) -> int:
    """A generous estimate of the prompt tokens of ``messages`` (no tokenizer needed)."""
    size = sum(len(m.content.encode()) for m in messages)
    return math.ceil(size / _BYTES_PER_TOKEN) + _TOKENS_PER_MESSAGE * (len(messages) + 1)


class BudgetExceeded(ArchonError):
    """A budget limit would be crossed. Evaluation and search count it as a failed item.

    Attributes:
        limit: which limit (``calls``, ``tokens``, ``usd`` or ``seconds``).
        scope: ``query`` (from the pipeline's ``budget``) or ``run`` (shared by a batch).
        spent: what had been spent in that scope when it was hit.
        seconds: wall time spent in that scope.
    """

    def __init__(self, limit: str, scope: str, allowed: float, spent: Usage, seconds: float):
        self.limit = limit
        self.scope = scope
        self.allowed = allowed
        self.spent = spent
        self.seconds = seconds
        super().__init__(
            f"{scope} budget exceeded: {limit} <= {allowed:g}; spent {spent.calls} calls, "
            f"{spent.tokens} tokens, ${spent.usd:.6f}, {seconds:.2f}s"
        )


@dataclass(frozen=True)
class Reservation:
    """An upper bound held against a meter until it is settled."""

    calls: int
    tokens: int
    usd: float


class Meter:
    """Tracks what one scope (a query or a run) spent against its :class:`~archon.ir.Budget`.

    Use only from the event loop thread. Example::

        meter = Meter(Budget(calls=10))
        held = await meter.reserve(Reservation(1, 600, 0.0))
        ...  # the call
        meter.settle(held, Usage(calls=1, prompt_tokens=90, completion_tokens=40))
    """

    def __init__(
        self,
        budget: Budget | None = None,
        *,
        scope: str = "query",
        parent: Meter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget = budget or Budget()
        self.scope = scope
        self.parent = parent
        self._clock = clock
        self._start = clock()
        self._spent = Usage()
        self._held = Reservation(0, 0, 0.0)
        self._in_flight = 0  # reservations not yet settled
        self._settled: asyncio.Event | None = None

    @property
    def spent(self) -> Usage:
        """Actual usage settled so far."""
        return self._spent

    @property
    def seconds(self) -> float:
        """Wall time since the meter was created."""
        return self._clock() - self._start

    @property
    def held(self) -> Reservation:
        """Upper bounds currently reserved by calls in flight."""
        return self._held

    def check_time(self) -> None:
        """Raise :class:`BudgetExceeded` when the seconds limit has passed."""
        if self.budget.seconds is not None and _passed(self.seconds, self.budget.seconds):
            self._exceeded("seconds", self.budget.seconds)
        if self.parent is not None:
            self.parent.check_time()

    def exhausted(self) -> str | None:
        """The first limit with no room left (``calls``, ``tokens``, ``usd``, ``seconds``),
        counting what is spent and held, or None.

        The one threshold rule, shared with :meth:`reserve`: a limit may be reached exactly,
        never passed, so a limit is exhausted exactly when what is spent and held has reached
        it -- then no further call fits (a search stops asking for trials). Limits of the
        parent meters are not consulted.
        """
        b, s, h = self.budget, self._spent, self._held
        if b.calls is not None and _reached(s.calls + h.calls, b.calls):
            return "calls"
        if b.tokens is not None and _reached(s.tokens + h.tokens, b.tokens):
            return "tokens"
        if b.usd is not None and _reached(s.usd + h.usd, b.usd):
            return "usd"
        if b.seconds is not None and _reached(self.seconds, b.seconds):
            return "seconds"
        return None

    def _exceeded(self, limit: str, allowed: float) -> None:
        raise BudgetExceeded(limit, self.scope, allowed, self._spent, self.seconds)

    def _overflow(self, want: Reservation) -> tuple[str, float] | None:
        """The first limit ``want`` would cross next to spent + held, or None."""
        b, s, h = self.budget, self._spent, self._held
        if b.calls is not None and _passed(s.calls + h.calls + want.calls, b.calls):
            return "calls", b.calls
        if b.tokens is not None and _passed(s.tokens + h.tokens + want.tokens, b.tokens):
            return "tokens", b.tokens
        if b.usd is not None and _passed(s.usd + h.usd + want.usd, b.usd):
            return "usd", b.usd
        return None

    def _blocked(self, want: Reservation) -> Meter | None:
        meter: Meter | None = self
        while meter is not None:
            if meter._overflow(want) is not None:
                return meter
            meter = meter.parent
        return None

    async def reserve(self, want: Reservation) -> Reservation:
        """Hold ``want`` in this meter and its parents, waiting for calls in flight to settle
        when it does not fit yet; raise :class:`BudgetExceeded` when it can never fit."""
        while True:
            self.check_time()
            blocked = self._blocked(want)
            if blocked is None:
                meter: Meter | None = self
                while meter is not None:
                    meter._held = _add(meter._held, want, 1)
                    meter._in_flight += 1
                    meter = meter.parent
                return want
            # Count calls in flight rather than compare the held amounts with zero: float
            # USD reservations do not always cancel exactly, and a residue would make this
            # wait for a settlement that never comes.
            if blocked._in_flight == 0:
                overflow = blocked._overflow(want)
                assert overflow is not None
                blocked._exceeded(*overflow)
            await blocked._wait_settle()

    async def _wait_settle(self) -> None:
        if self._settled is None or self._settled.is_set():
            self._settled = asyncio.Event()
        event = self._settled
        await event.wait()

    def settle(self, held: Reservation, actual: Usage) -> None:
        """Release ``held`` and charge ``actual`` in this meter and its parents."""
        meter: Meter | None = self
        while meter is not None:
            meter._in_flight -= 1
            meter._held = (
                _add(meter._held, held, -1) if meter._in_flight else Reservation(0, 0, 0.0)
            )
            meter._spent = meter._spent + actual
            if meter._settled is not None:
                meter._settled.set()
            meter = meter.parent


_TOLERANCE = 1e-12
"""Float slack of the threshold: USD sums that equal a limit up to rounding reach it."""


def _passed(amount: float, allowed: float) -> bool:
    """Whether ``amount`` passes the limit ``allowed`` (reaching it exactly is allowed)."""
    return amount > allowed + _TOLERANCE


def _reached(amount: float, allowed: float) -> bool:
    """Whether ``amount`` has reached ``allowed``: nothing more fits (see :func:`_passed`)."""
    return amount >= allowed - _TOLERANCE


def _add(a: Reservation, b: Reservation, sign: int) -> Reservation:
    return Reservation(
        a.calls + sign * b.calls, a.tokens + sign * b.tokens, max(0.0, a.usd + sign * b.usd)
    )
