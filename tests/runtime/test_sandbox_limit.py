"""Sandboxed program runs go through ``ctx.run_*`` and are bounded by ``Limits``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

import pytest

from archon import sandbox
from archon.layers.execute import Execute, ExecuteParams
from archon.runtime import Limits, run
from archon.runtime.clients.fake import ScriptedClient
from archon.testing import LayerContract
from archon.testing.sandbox_stand_in import StandInOutcome, StandInReport
from archon.values import Candidate, Candidates, Payload


class _Programs(LayerContract):
    layer = Execute
    params = ExecuteParams()

    def make_inputs(self, n: int) -> Sequence[Payload]:
        return (
            Candidates(
                items=tuple(
                    Candidate(text=f"print({i})", model="m", sample_index=i) for i in range(n)
                )
            ),
        )


class _Counter:
    """A stand-in for ``sandbox.run_stdio`` that records how many runs overlap."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.runs = 0

    async def run_stdio(
        self, code: str, inputs: Sequence[str], *, timeout_s: float, memory_mb: int
    ) -> StandInReport:
        self.in_flight += 1
        self.runs += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.02)
            return StandInReport((StandInOutcome("ok", value=code),))
        finally:
            self.in_flight -= 1


def _run_programs(monkeypatch: pytest.MonkeyPatch, n: int, limits: Limits) -> _Counter:
    counter = _Counter()
    monkeypatch.setattr(sandbox, "run_stdio", counter.run_stdio)
    contract = _Programs()
    pipeline = contract.pipeline(contract.make_inputs(n))
    result = asyncio.run(
        run(pipeline, "q", client=ScriptedClient(), registry=contract.registry(), limits=limits)
    )
    assert isinstance(result.output, Candidates) and len(result.output.items) == n
    return counter


def test_one_sandbox_slot_means_one_program_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = _run_programs(monkeypatch, 5, Limits(sandbox_concurrency=1))
    assert counter.runs == 5 and counter.most == 1


def test_the_bound_is_the_limit_not_one(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = _run_programs(monkeypatch, 6, Limits(sandbox_concurrency=3))
    assert counter.runs == 6 and counter.most == 3


def test_sandbox_concurrency_defaults_to_the_cores_and_must_be_positive() -> None:
    assert Limits().sandbox_concurrency == (os.cpu_count() or 1)
    with pytest.raises(ValueError, match="sandbox_concurrency"):
        Limits(sandbox_concurrency=0)
