"""Every example compiles and runs offline on the ScriptedClient with holes at defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from archon.compiler import compile_file
from archon.compiler.structure import assign
from archon.layers import default_registry
from archon.runtime import Limits, run_sync
from archon.runtime.clients.fake import ScriptedClient

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.pipe"))

SCRIPT = [
    (r"Ranking:", "Ranking: [2] > [1] > [3]"),
    (r"Verdict: Yes", "The answer checks out.\nVerdict: Yes"),
    (r"Score: N", "Score: 8"),
    (r"unit tests", "```python\nassert add(1, 2) == 3\nassert add(0, 0) == 0\n```"),
    (r"Strengths", "Strengths: clear.\nWeaknesses: terse."),
    (None, "def add(a, b):\n    return a + b\n\nAnswer: 3"),
]


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(path: Path) -> None:
    registry = default_registry()
    pipeline, _ = assign(compile_file(path, registry), None, registry)
    client = ScriptedClient(SCRIPT)
    result = run_sync(
        pipeline,
        "Write a Python function add(a, b) that returns the sum; what is add(1, 2)?",
        client=client,
        registry=registry,
        limits=Limits(retries=0, timeout_s=30.0, local_concurrency=8),
    )
    assert result.answer.strip()
    assert result.usage.calls == client.calls
