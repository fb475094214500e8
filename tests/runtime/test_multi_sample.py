"""Samples of one node sent as ONE request with ``n`` to a client that batches them."""

from __future__ import annotations

from pathlib import Path

from archon.layers.registry import Registry
from archon.runtime import MemoryTrace, run_sync
from archon.runtime.cache import CallCache
from archon.runtime.clients.fake import ScriptedClient
from archon.runtime.context import split_usage
from archon.values import Candidates, Completion, CompletionRequest, CompletionResponse, Usage

from .conftest import node, pipeline


class BatchingClient(ScriptedClient):
    """A scripted client that also answers many samples in one request."""

    def __init__(self) -> None:
        super().__init__(lambda r: f"single:{r.seed}")
        self.batched: list[tuple[int, ...]] = []

    def batches_samples(self, model: str) -> bool:
        return model == "server"

    async def complete_samples(
        self, request: CompletionRequest, seeds: tuple[int, ...]
    ) -> CompletionResponse:
        self.batched.append(seeds)
        return CompletionResponse(
            completions=tuple(Completion(text=f"batch:{s}") for s in seeds),
            usage=Usage(calls=1, prompt_tokens=10, completion_tokens=5 * len(seeds)),
        )


def test_five_samples_go_as_one_request_and_become_five_cached_samples(
    registry: Registry, tmp_path: Path
) -> None:
    client = BatchingClient()
    cache = CallCache(tmp_path / "cache.sqlite")
    trace = MemoryTrace()
    p = pipeline(node("gen", models=["server"], samples=5, temperature=0.8))
    first = run_sync(p, "q", client=client, registry=registry, cache=cache, trace=trace, seed=7)
    assert len(client.batched) == 1 and len(client.batched[0]) == 5
    assert client.calls == 0  # no single-sample request was made
    assert isinstance(first.output, Candidates)
    assert [c.sample_index for c in first.output.items] == [0, 1, 2, 3, 4]
    assert first.output.items[0].text == "batch:7"  # sample 0 keeps the request's seed
    # usage is accounted once: 10 prompt tokens, 25 completion tokens, 5 calls
    assert (first.usage.calls, first.usage.prompt_tokens, first.usage.completion_tokens) == (
        5,
        10,
        25,
    )
    assert sorted(r.sample_index for r in trace.records) == [0, 1, 2, 3, 4]
    # the five samples are cached one by one: a 3-sample rerun costs nothing
    again = run_sync(
        pipeline(node("gen", models=["server"], samples=3, temperature=0.8)),
        "q",
        client=client,
        registry=registry,
        cache=cache,
        seed=7,
    )
    assert len(client.batched) == 1 and again.usage.calls == 0
    assert isinstance(again.output, Candidates)
    assert [c.text for c in again.output.items] == [c.text for c in first.output.items[:3]]


def test_only_the_missing_samples_are_requested(registry: Registry, tmp_path: Path) -> None:
    client = BatchingClient()
    cache = CallCache(tmp_path / "cache.sqlite")
    small = pipeline(node("gen", models=["server"], samples=2, temperature=0.8))
    run_sync(small, "q", client=client, registry=registry, cache=cache, seed=1)
    big = pipeline(node("gen", models=["server"], samples=5, temperature=0.8))
    result = run_sync(big, "q", client=client, registry=registry, cache=cache, seed=1)
    assert [len(s) for s in client.batched] == [2, 3]
    assert result.usage.calls == 3


def test_models_that_do_not_batch_keep_one_request_per_sample(registry: Registry) -> None:
    client = BatchingClient()
    result = run_sync(
        pipeline(node("gen", models=["other"], samples=3)), "q", client=client, registry=registry
    )
    assert client.batched == [] and client.calls == 3
    assert result.usage.calls == 3


def test_split_usage_adds_up() -> None:
    shares = split_usage(Usage(calls=1, prompt_tokens=10, completion_tokens=7, usd=0.3), 3)
    assert sum(s.completion_tokens for s in shares) == 7
    assert sum(s.prompt_tokens for s in shares) == 10
    assert abs(sum(s.usd for s in shares) - 0.3) < 1e-12
    assert all(s.calls == 1 for s in shares)
