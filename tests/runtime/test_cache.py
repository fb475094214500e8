"""The persistent call cache: hits on rerun, per-sample reuse, no errors, many processes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from archon.layers.registry import Registry
from archon.runtime import CallCache, Limits, cache_key, run_sync
from archon.runtime.clients.fake import ScriptedClient
from archon.values import Completion, CompletionRequest, CompletionResponse, Message, Usage

from .conftest import node, pipeline


def _request(**update: object) -> CompletionRequest:
    base = CompletionRequest(model="m", messages=(Message(role="user", content="hi"),))
    return base.model_copy(update=update)


def test_key_covers_sampling_and_sample_index() -> None:
    keys = {
        cache_key(_request(), 0, 0),
        cache_key(_request(), 1, 0),
        cache_key(_request(), 0, 1),
        cache_key(_request(temperature=0.0), 0, 0),
        cache_key(_request(model="other"), 0, 0),
    }
    assert len(keys) == 5
    assert cache_key(_request(n=5), 0, 0) == cache_key(_request(), 0, 0)  # n is not part of it


def test_rerun_hits_the_cache(tmp_path: Path, registry: Registry) -> None:
    cache = CallCache(tmp_path / "c.sqlite")
    p = pipeline(node("gen", samples=2, temperature=0.8))
    first = run_sync(p, "q", client=ScriptedClient(), registry=registry, cache=cache)
    client = ScriptedClient()
    second = run_sync(p, "q", client=client, registry=registry, cache=cache)
    assert client.calls == 0 and second.cache_hits == 2
    assert second.answer == first.answer
    assert second.usage.calls == 0  # cache hits are free


def test_five_samples_reuse_three(tmp_path: Path, registry: Registry) -> None:
    cache = CallCache(tmp_path / "c.sqlite")
    three = pipeline(node("gen", samples=3, temperature=1.0))
    five = pipeline(node("gen", samples=5, temperature=1.0))
    run_sync(three, "q", client=ScriptedClient(), registry=registry, cache=cache)
    client = ScriptedClient()
    result = run_sync(five, "q", client=client, registry=registry, cache=cache)
    assert client.calls == 2 and result.cache_hits == 3
    assert cache.stats().entries == 5


def test_errors_are_never_cached(tmp_path: Path, registry: Registry) -> None:
    cache = CallCache(tmp_path / "c.sqlite")
    client = ScriptedClient(fail_first=1)
    run_sync(
        pipeline(node("gen")),
        "q",
        client=client,
        registry=registry,
        cache=cache,
        limits=Limits(backoff_s=0.001),
    )
    assert client.calls == 2 and cache.stats().entries == 1


def test_stats_and_clear(tmp_path: Path) -> None:
    cache = CallCache(tmp_path / "c.sqlite")
    response = CompletionResponse(completions=(Completion(text="a"),), usage=Usage(calls=1))
    cache.put("k1", "m1", response)
    cache.put("k1", "m1", response)
    cache.put("k2", "m2", response)
    stats = cache.stats()
    assert stats.entries == 2 and dict(stats.models) == {"m1": 1, "m2": 1}
    got = cache.get("k1")
    assert got is not None and got.cached and got.completions[0].text == "a"
    assert cache.clear() == 2 and cache.stats().entries == 0


def _writer(path: str, worker: int) -> None:
    cache = CallCache(path, busy_timeout_s=30)
    response = CompletionResponse(completions=(Completion(text=f"w{worker}"),))
    for i in range(200):
        cache.put(f"k{i % 50}-{worker % 2}", "m", response)
        cache.get(f"k{i % 50}-0")
    cache.close()


def test_several_processes_write_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "c.sqlite")
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(path, w)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert all(w.exitcode == 0 for w in workers)
    assert CallCache(path).stats().entries == 100
