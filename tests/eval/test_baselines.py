"""Baselines next to an architecture: single samples of its models, equal-cost majority vote,
and paired differences, on the ScriptedClient."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from archon.compiler import compile_source
from archon.eval import EvalConfig, evaluate
from archon.eval.baselines import (
    compare_baselines,
    equal_cost_samples,
    models_of,
    repeated_sampling,
    single_sample,
)
from archon.ir import Pipeline
from archon.layers import default_registry
from archon.runtime import prepare
from archon.runtime.clients.fake import ScriptedClient, prompt_text
from archon.values import CompletionRequest

from .conftest import qa_dataset

ARCH = """
models { small = "fake/small"  big = "fake/big" }
pipeline arch {
  generate(models = [small], samples = 2, temperature = 0.7, max_tokens = 48,
           system_prompt = "Be brief.")
  fuse(models = [big], max_tokens = 48)
}
"""


def arch() -> Pipeline:
    return compile_source(ARCH)


def reply(request: CompletionRequest) -> str:
    """``big`` is always right; ``small`` only on even items."""
    i = int(re.findall(r"q(\d+):", prompt_text(request))[0])
    right = request.model == "fake/big" or i % 2 == 0
    return f"The answer is {2 * i}." if right else "The answer is 7777."


def test_models_of_lists_every_role_once() -> None:
    assert models_of(arch()) == ("fake/small", "fake/big")


def test_baseline_pipelines_are_runnable_and_keep_the_prompt_settings() -> None:
    registry = default_registry()
    single = single_sample(arch(), "fake/big")
    prepare(single, registry)
    node = single.nodes[0]
    assert node.kind == "generate" and single.name == "single[fake/big]"
    assert node.arguments() == {
        "models": ("fake/big",),
        "samples": 1,
        "temperature": 0.0,
        "max_tokens": 48,
        "system_prompt": "Be brief.",
    }
    assert [spec.alias for spec in single.models] == ["big"]
    voted = repeated_sampling(arch(), "fake/small", 5, code=True)
    prepare(voted, registry)
    assert [n.kind for n in voted.nodes] == ["generate", "vote"]
    assert voted.nodes[0].arguments()["temperature"] == 0.7  # the architecture's own
    assert voted.nodes[1].arguments() == {"extract": "code"}
    text = repeated_sampling(single, "fake/big", 3, code=False)
    assert text.nodes[0].arguments()["temperature"] == 0.8  # greedy architecture: 0.8
    assert text.nodes[1].arguments() == {"extract": "auto"}


def test_equal_cost_samples_rounds_the_calls_per_query() -> None:
    assert [equal_cost_samples(x) for x in (0.2, 1.0, 2.5, 3.49, 8.0)] == [1, 1, 3, 3, 8]


def test_compare_baselines_pairs_each_baseline_with_the_architecture(tmp_path: Path) -> None:
    dataset = qa_dataset(8)
    records = tmp_path / "arch.jsonl"
    config = EvalConfig.of(client=ScriptedClient(reply), records_path=records)

    async def go() -> tuple[float | None, list[tuple[str, int, float | None]], list[object]]:
        result = await evaluate(arch(), dataset, config)
        rows = await compare_baselines(arch(), dataset, config, result)
        table = [(r.name, r.samples, r.result.summary.accuracy) for r in rows]
        return result.summary.accuracy, table, [r.versus for r in rows]

    accuracy, table, versus = asyncio.run(go())
    assert accuracy == 1.0  # the big model fuses
    assert table == [
        ("single[fake/small]", 1, 0.5),
        ("single[fake/big]", 1, 1.0),
        ("vote3[fake/big]", 3, 1.0),  # 3 calls per query, all on the best single model
    ]
    small, big, vote = versus
    assert small is not None and small.diff == pytest.approx(0.5) and small.excludes_zero
    assert big is not None and (big.diff, big.low, big.high) == (0.0, 0.0, 0.0)
    assert vote is not None and not vote.excludes_zero
    # every baseline has its own records file next to the architecture's (for --resume)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "arch.jsonl",
        "arch.single_fake_big_.jsonl",
        "arch.single_fake_small_.jsonl",
        "arch.vote3_fake_big_.jsonl",
    ]
