"""Stopping a step-level search cleanly before a round the query's budget cannot pay for.

A model call that does not fit in the budget raises the runtime's ``BudgetExceeded``, which
fails the node (and the query). A search that works in rounds can do better: before each
round it compares the round's upper bound with :meth:`LayerContext.budget_left` and, when
the round does not fit, stops and returns what it has found so far.

* calls and tokens: the round's static bound (every request it will send, counted as the
  meter reserves them, plus the scorer's calls);
* USD and seconds (no static bound is known to a layer): the previous round's spending,
  scaled by the ratio of token bounds for USD. The first round is never refused for them.

The check is exact for calls when nothing else spends from the same budget meanwhile (a
parallel branch of the pipeline can still take the room, and the call then fails as usual).

Private to the package (the leading underscore keeps it out of the kind scan).
"""

from __future__ import annotations

from dataclasses import dataclass

from archon.layers.base import BudgetLeft, LayerContext


@dataclass
class RoundBudget:
    """Decides, round by round, whether the next round fits what the query may still spend."""

    _before: BudgetLeft | None = None
    _planned_tokens: int = 0
    _usd_per_token: float | None = None
    _round_seconds: float | None = None

    def refusal(self, ctx: LayerContext, calls: int, tokens: int) -> str | None:
        """Why a round of ``calls`` calls and ``tokens`` tokens (upper bounds) would not fit,
        or None when it fits. Remembers the room left, for :meth:`spent`."""
        left = ctx.budget_left()
        if left.calls is not None and calls > left.calls:
            return f"the next step needs up to {calls} calls and {max(0, left.calls)} are left"
        if left.tokens is not None and tokens > left.tokens:
            return f"the next step needs up to {tokens} tokens and {max(0, left.tokens)} are left"
        if self._usd_per_token is not None and left.usd is not None:
            usd = self._usd_per_token * tokens
            if usd > left.usd:
                return f"the next step would cost about ${usd:.6f} and ${left.usd:.6f} is left"
        seconds = self._round_seconds
        if seconds is not None and left.seconds is not None and seconds > left.seconds:
            return f"the last step took {seconds:.1f}s and {max(0.0, left.seconds):.1f}s are left"
        self._before, self._planned_tokens = left, tokens
        return None

    def spent(self, ctx: LayerContext) -> None:
        """Record what the round that just ended spent (for the USD and seconds checks)."""
        before, after = self._before, ctx.budget_left()
        if before is None:
            return
        if before.usd is not None and after.usd is not None and self._planned_tokens > 0:
            rate = max(0.0, before.usd - after.usd) / self._planned_tokens
            self._usd_per_token = max(rate, self._usd_per_token or 0.0)
        if before.seconds is not None and after.seconds is not None:
            self._round_seconds = max(0.0, before.seconds - after.seconds)
