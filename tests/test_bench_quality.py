"""bench/quality.py's reporting logic on the ScriptedClient: architectures, their baselines,
the paired intervals, records per architecture, and the Markdown section."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from archon.eval import Dataset, EvalConfig, EvalItem
from archon.runtime.clients.fake import ScriptedClient, prompt_text
from archon.values import CompletionRequest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quality() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_quality", ROOT / "bench" / "quality.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_quality"] = module
    spec.loader.exec_module(module)
    return module


def dataset(n: int) -> Dataset:
    items = tuple(
        EvalItem(id=f"q{i}", turns=(f"q{i}: what is {i} + {i}?",), targets=(str(2 * i),))
        for i in range(n)
    )
    return Dataset(name="qa", items=items, metric="exact_match")


def reply(request: CompletionRequest) -> str:
    """Greedy samples are right on even items; sampled ones (seeded) on every item."""
    i = int(re.findall(r"q(\d+):", prompt_text(request))[0])
    greedy = not request.temperature
    return f"The answer is {2 * i}." if (not greedy or i % 2 == 0) else "The answer is 1."


def test_architectures_baselines_and_markdown(quality: ModuleType, tmp_path: Path) -> None:
    archs = quality.architectures(["single", "vote_5"], "fake/q", code=False)
    config = EvalConfig.of(client=ScriptedClient(reply))

    async def go() -> list[object]:
        return [await quality.measure(arch, dataset(6), config) for arch in archs]

    single, vote = asyncio.run(go())
    assert single.result.summary.accuracy == 0.5 and vote.result.summary.accuracy == 1.0
    assert [row.name for row in vote.baselines] == ["single[fake/q]", "vote5[fake/q]"]
    versus_single = vote.baselines[0].versus
    assert versus_single is not None and versus_single.diff == pytest.approx(0.5)
    text = quality.markdown([single, vote], "caption", "python bench/quality.py single vote_5")
    assert text.startswith("### caption\n")
    assert "| vote_5 | 6 | 100.0% | 100.0% | 5.0 | 5.00, 5, 5 |" in text
    assert "| fake/q 5.0 | 0 |" in text  # calls by model, then no early exit
    assert "| single | 6 | 50.0% |" in text
    assert "| vote_5 | single[fake/q] | 50.0% | 1.0 |" in text
    assert "+50.0 [" in text and "| yes |" in text  # the interval excludes 0
    assert "| vote_5 | vote5[fake/q] | 100.0% | 5.0 |" in text
    assert text.rstrip().endswith("Run with `python bench/quality.py single vote_5`.")
    # the first architecture against the other one, paired on their common items
    assert "| single | vote_5 | 6 | -50.0 [" in text


def test_versus_rows_pair_on_common_items(quality: ModuleType) -> None:
    archs = quality.architectures(["single", "vote_5"], "fake/q", code=False)
    config = EvalConfig.of(client=ScriptedClient(reply))

    async def go() -> list[object]:
        return [
            await quality.measure(archs[0], dataset(6), config, baselines=False),
            await quality.measure(archs[1], dataset(4), config, baselines=False),
        ]

    single, vote = asyncio.run(go())
    (row,) = quality.versus_rows([vote, single])
    # items q0..q3: vote right on all four, single on q0 and q2
    assert row.startswith("| vote_5 | single | 4 | +50.0 [")
    assert quality.versus_rows([vote]) == []


def test_templates_with_params_and_records_per_architecture(
    quality: ModuleType, tmp_path: Path
) -> None:
    template = tmp_path / "tpl.pipe"
    template.write_text(
        'models { q = "fake/q" }\n'
        "pipeline tpl {\n"
        "  generate(models = [q], samples = int(1, 4), temperature = 0.7, max_tokens = 32)\n"
        '  vote(extract = "number")\n'
        "}\n"
    )
    params = tmp_path / "best.json"
    params.write_text(json.dumps({"params": {"generate_1.samples": 3}}))
    (arch,) = quality.architectures([f"{template}={params}"], "unused", code=False)
    assert arch.label == "tpl[best]"
    assert arch.pipeline.nodes[0].arguments()["samples"] == 3
    folder = tmp_path / "records"
    config = quality.records_config(
        EvalConfig.of(client=ScriptedClient(reply)), folder, "qa", "tpl[best]"
    )
    measured = asyncio.run(quality.measure(arch, dataset(4), config))
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "qa.tpl_best_.jsonl",
        "qa.tpl_best_.single_fake_q_.jsonl",
        "qa.tpl_best_.vote3_fake_q_.jsonl",
    ]
    # resuming redoes nothing: every record is there
    client = ScriptedClient(reply)
    again = asyncio.run(
        quality.measure(arch, dataset(4), config.replace(client=client, resume=True))
    )
    assert client.calls == 0 and again.result.resumed == 4
    assert measured.result.summary.accuracy == again.result.summary.accuracy


def test_arguments(quality: ModuleType) -> None:
    with pytest.raises(SystemExit):
        quality.parse_args(["single", "--resume"])  # --resume needs --records
    args = quality.parse_args(["a.pipe", "single", "--dataset", "gsm8k", "--split", "dev"])
    assert args.archs == ["a.pipe", "single"] and args.limit is None
    assert len(quality.slice_of(args)) <= 5
