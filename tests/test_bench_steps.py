"""bench/steps.py's plumbing on the ScriptedClient: the three shapes compile at each budget,
records make a run resumable, and each search is paired against best-of-N + vote."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from archon.eval import EvalConfig
from archon.runtime.clients.fake import ScriptedClient

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def steps() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_steps", ROOT / "bench" / "steps.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_steps"] = module
    spec.loader.exec_module(module)
    return module


def test_shapes_stay_within_the_budget(steps: ModuleType) -> None:
    for budget in (8, 16):
        for shape in steps.shapes(budget, 4, "logprob", 32, "number"):
            pipeline = steps.build(shape.body, "fake/q")
            assert pipeline.nodes, shape.config
    beam = next(s for s in steps.shapes(16, 4, "logprob", 32, "number") if s.config == "beam")
    assert "beam_width = 2, expansions = 2" in beam.body


def test_measure_records_resume_and_versus(steps: ModuleType, tmp_path: Path) -> None:
    client = ScriptedClient(lambda request: "The answer is 7.")
    plan = [s for s in steps.shapes(8, 2, "logprob", 16, "number") if s.config != "particle"]
    config = EvalConfig.of(client=client, concurrency=2)
    rows = asyncio.run(steps.measure("arithmetic", 3, plan, "fake/q", config, tmp_path))
    assert [r.shape.config for r in rows] == ["bon_vote", "beam"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "arithmetic.beam.8.jsonl",
        "arithmetic.bon_vote.8.jsonl",
    ]
    calls = client.calls
    again = asyncio.run(
        steps.measure("arithmetic", 3, plan, "fake/q", config.replace(resume=True), tmp_path)
    )
    assert client.calls == calls and all(r.result.resumed == 3 for r in again)
    (line,) = steps.versus_best_of_n(rows)
    assert line.startswith("* arithmetic at 8 calls: beam - bon_vote = +0.0 [+0.0, +0.0]")
    assert "over 3 items" in line
