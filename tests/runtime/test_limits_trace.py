"""Limits (capacities, backoff) and the JSONL trace writer."""

from __future__ import annotations

import random
from pathlib import Path

from archon.layers.registry import Registry
from archon.runtime import JsonlTrace, Limits, read_trace, run_sync
from archon.runtime.clients.fake import ScriptedClient

from .conftest import node, pipeline


def test_capacities() -> None:
    limits = Limits(8, {"openai/": 4, "openai/gpt-4o": 2, "local/big": 2})
    assert limits.capacity("openai/gpt-4o") == 2
    assert limits.capacity("openai/gpt-4o-mini") == 4
    assert limits.capacity("local/qwen2.5-coder-0.5b") == 8  # the engine batches 8 sequences
    assert limits.capacity("local/big") == 2
    assert limits.capacity("anthropic/claude") == 8


def test_backoff_grows_with_jitter_and_cap() -> None:
    limits = Limits(backoff_s=1.0, max_backoff_s=5.0, jitter=0.5, rng=random.Random(0))
    delays = [limits.backoff(a) for a in range(5)]
    assert 1.0 <= delays[0] <= 1.5 and 2.0 <= delays[1] <= 3.0
    assert all(d <= 7.5 for d in delays)
    assert limits.backoff(0, retry_after_s=4.0) >= 4.0


def test_jsonl_trace_one_line_per_call(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "run.jsonl"
    with JsonlTrace(path) as trace:
        run_sync(
            pipeline(node("gen", models=["a", "b"], samples=2)),
            "q",
            client=ScriptedClient(),
            registry=registry,
            trace=trace,
        )
    records = read_trace(path)
    assert len(records) == 4
    assert {(r.model, r.sample_index) for r in records} == {("a", 0), ("a", 1), ("b", 0), ("b", 1)}
    assert all(r.node_id == "gen" and len(r.prompt_sha256) == 64 for r in records)
    assert all(r.prompt is None for r in records)  # prompts only when asked for
    lines = path.read_text().splitlines()
    assert len(lines) == 5 and '"event": "node"' in lines[-1]  # four calls, then the node
