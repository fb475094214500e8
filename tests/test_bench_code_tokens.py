"""bench/code_tokens.py's comparison and report on the ScriptedClient."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from archon.eval import Dataset, EvalItem
from archon.runtime.clients.fake import ScriptedClient, prompt_text
from archon.values import CompletionRequest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    path = ROOT / "bench" / "code_tokens.py"
    spec = importlib.util.spec_from_file_location("bench_code_tokens", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_code_tokens"] = module
    spec.loader.exec_module(module)
    return module


def dataset(n: int) -> Dataset:
    items = tuple(
        EvalItem(id=f"q{i}", turns=(f"q{i}: set x to {i}",), targets=(f"x = {i}",))
        for i in range(n)
    )
    return Dataset(name="code-ish", items=items, metric="exact_match")


def reply(request: CompletionRequest) -> str:
    """A program, then an explanation (after a blank line on even items, else not)."""
    found = re.findall(r"q(\d+):", prompt_text(request))
    i = int(found[0]) if found else 0
    gap = "\n\n" if i % 2 == 0 else "\n"
    return f"```python\nx = {i}\n```{gap}This sets x to {i}, which is what was asked for."


def test_the_option_cuts_tokens_keeps_programs_and_the_report_says_so(bench: ModuleType) -> None:
    client = ScriptedClient(reply)
    plain, stopped = asyncio.run(bench.compare(dataset(4), client, "fake/q", 64, 2))
    assert stopped.tokens_per_query < plain.tokens_per_query
    assert bench.same_programs(plain, stopped) == 4
    assert all(text.endswith("```") for text in stopped.texts().values())
    assert [r.stop_after_code for r in client.requests[1:]] == [False] * 4 + [True] * 4
    text = bench.report(plain, stopped)
    assert "| plain | 4 |" in text and "| stop_after_code | 4 |" in text
    assert "same program in 4/4 replies" in text
    assert "2  stop sequence ends it at the closing fence" in text
    assert "2  stop sequence misses" in text


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        ("no fence here", "no complete code block"),
        ("```py\nx = 1\n```\n", "nothing after the block"),
        ("Hi:\n```\nx = 1\n```\n\nBye", "stop sequence ends it at the closing fence"),
        ("Hi:\n```\n\nx = 1\n```\nBye", "stop sequence cuts before the block closes"),
    ],
)
def test_api_stop_outcome(bench: ModuleType, text: str, outcome: str) -> None:
    assert bench.api_stop_outcome(text) == outcome


def test_plain_prompts_drop_the_one_block_request(bench: ModuleType) -> None:
    item = EvalItem(
        id="h0",
        turns=("Complete it. Reply with the function in one ```python code block.\n\n```x```",),
    )
    plain = bench.plain_prompts(Dataset(name="d", items=(item,), metric="exact_match"))
    assert plain.items[0].turns == ("Complete it.\n\n```x```",)
    assert "temperature = 0.8" in bench.pipeline_text("m", 64, True, 0.8)
