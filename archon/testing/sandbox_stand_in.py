"""An in-process stand-in for the sandbox's ``run_calls`` and ``run_stdio``, for tests.

It runs **trusted test programs in the test process** (no isolation, no limits), so tests
of execution-based layers can check grouping and ranking quickly and without subprocesses.
Never give it code a model wrote. Its reports have the real ones' shape: ``outcomes[i]``
with ``status`` (``"ok"`` or ``"error"``), ``value`` (``repr`` of the returned value, or
the program's stdout) and ``error`` (the exception type's name)::

    def test_something(monkeypatch):
        use_stand_in(monkeypatch)
        ...  # exec_vote now runs candidates with the stand-in
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

__all__ = ["StandInOutcome", "StandInReport", "run_calls", "run_stdio", "use_stand_in"]


@dataclass(frozen=True)
class StandInOutcome:
    """One input's result."""

    status: str
    value: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class StandInReport:
    """All outcomes of one program, in input order."""

    outcomes: tuple[StandInOutcome, ...]


def _attempt(action: Callable[[], object]) -> StandInOutcome:
    try:
        return StandInOutcome("ok", value=repr(action()))
    except Exception as error:  # report what the real sandbox reports: the type's name
        return StandInOutcome("error", error=type(error).__name__)


async def run_calls(
    code: str, calls: Sequence[str], *, timeout_s: float = 5.0, memory_mb: int = 512
) -> StandInReport:
    """Load ``code``, then evaluate each call expression (trusted test code only)."""
    namespace: dict[str, object] = {"__name__": "solution"}
    loaded = _attempt(lambda: exec(code, namespace))
    if loaded.status != "ok":
        return StandInReport(tuple(loaded for _ in calls))
    return StandInReport(tuple(_attempt(_evaluator(call, namespace)) for call in calls))


def _evaluator(call: str, namespace: dict[str, object]) -> Callable[[], object]:
    return lambda: eval(call, namespace)


async def run_stdio(
    code: str, inputs: Sequence[str], *, timeout_s: float = 5.0, memory_mb: int = 512
) -> StandInReport:
    """Run ``code`` as a program once per stdin text; the value is its stdout."""
    outcomes = []
    for text in inputs:
        out = io.StringIO()
        saved, sys.stdin = sys.stdin, io.StringIO(text)
        try:
            with contextlib.redirect_stdout(out):
                result = _attempt(lambda: exec(code, {"__name__": "__main__"}))
        finally:
            sys.stdin = saved
        outcomes.append(
            StandInOutcome("ok", value=out.getvalue()) if result.status == "ok" else result
        )
    return StandInReport(tuple(outcomes))


def use_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``archon.sandbox.run_calls``/``run_stdio`` the stand-ins for one test."""
    from archon import sandbox

    monkeypatch.setattr(sandbox, "run_calls", run_calls, raising=False)
    monkeypatch.setattr(sandbox, "run_stdio", run_stdio, raising=False)
