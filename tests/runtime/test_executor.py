"""Executor behaviour on ScriptedClient: concurrency, failures, answers, run_many, turns."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from archon.ir import Budget, Choice, Param, Switch
from archon.layers.registry import Registry
from archon.runtime import (
    BudgetExceeded,
    InvalidNode,
    Limits,
    MemoryTrace,
    NodeFailed,
    PipelineNotConcrete,
    run,
    run_conversation,
    run_many,
    run_sync,
)
from archon.runtime.clients.base import ModelCallError
from archon.runtime.clients.fake import ScriptedClient
from archon.values import Candidates, Message

from .conftest import node, pipeline


def test_one_generate_node_answers(registry: Registry) -> None:
    client = ScriptedClient([(r"2\+2", "4")])
    result = run_sync(pipeline(node("gen")), "what is 2+2?", client=client, registry=registry)
    assert result.answer == "4"
    assert result.usage.calls == 1
    assert isinstance(result.output, Candidates)
    assert result.node_output("gen") == result.output
    sent = client.requests[0]
    assert sent.messages[-1] == Message(role="user", content="what is 2+2?")
    assert sent.messages[0].role == "system"


def test_samples_and_models_become_ordered_candidates(registry: Registry) -> None:
    client = ScriptedClient(lambda r: f"{r.model}:{r.seed}")
    p = pipeline(node("gen", models=["a", "b"], samples=3, temperature=0.7))
    result = run_sync(p, "q", client=client, registry=registry, seed=5)
    assert isinstance(result.output, Candidates)
    items = result.output.items
    assert [c.model for c in items] == ["a"] * 3 + ["b"] * 3
    assert [c.sample_index for c in items] == [0, 1, 2] * 2
    seeds = [c.text.split(":")[1] for c in items[:3]]
    assert seeds[0] == "5" and len(set(seeds)) == 3
    again = run_sync(
        p, "q", client=ScriptedClient(lambda r: f"{r.model}:{r.seed}"), registry=registry, seed=5
    )
    assert again.output == result.output  # deterministic under a fixed seed


def test_independent_branches_overlap_in_time(registry: Registry) -> None:
    client = ScriptedClient(latency_s=0.2)
    p = pipeline(
        node("left", models=["a"]),
        node("right", models=["b"]),
        node("both", "join", inputs=["left", "right"]),
    )
    started = time.monotonic()
    result = run_sync(p, "hello", client=client, registry=registry)
    elapsed = time.monotonic() - started
    (a_start, a_end), (b_start, b_end) = client.intervals[:2]
    assert a_start < b_end and b_start < a_end  # the two branches overlapped
    assert elapsed < 0.55  # 2 levels x 0.2 s, not 3 sequential calls
    assert result.answer == "join: hello | hello"


def test_one_failing_node_cancels_the_others(registry: Registry) -> None:
    client = ScriptedClient(latency_s=2.0)
    p = pipeline(
        node("slow", models=["a"]),
        node("bad", "boom", line=7, message="kaput"),
        node("both", "join", inputs=["slow", "bad"]),
    )
    started = time.monotonic()
    with pytest.raises(NodeFailed) as info:
        run_sync(p, "q", client=client, registry=registry)
    assert time.monotonic() - started < 1.0
    assert info.value.node_id == "bad"
    assert str(info.value).startswith("node `bad` (test.pipe:7) failed: kaput")
    assert client.in_flight == 0 and client.intervals == []  # slow call was cancelled


def test_retry_then_success(registry: Registry, fast_limits: Limits) -> None:
    client = ScriptedClient(fail_first=2)
    trace = MemoryTrace()
    result = run_sync(
        pipeline(node("gen")),
        "hi",
        client=client,
        registry=registry,
        limits=fast_limits,
        trace=trace,
    )
    assert result.answer == "hi"
    assert client.calls == 3
    assert trace.records[-1].attempts == 3 and trace.records[-1].error is None


def test_retry_exhaustion_names_the_node(registry: Registry) -> None:
    client = ScriptedClient(fail_when=lambda r: True)
    limits = Limits(retries=2, backoff_s=0.001, max_backoff_s=0.002)
    p = pipeline(node("gen_1", line=4))
    with pytest.raises(NodeFailed) as info:
        run_sync(p, "hi", client=client, registry=registry, limits=limits)
    assert client.calls == 3
    assert info.value.node_id == "gen_1"
    assert "node `gen_1` (test.pipe:4) failed" in str(info.value)
    assert "gave up after 3 attempts" in str(info.value)


def test_non_retryable_error_is_not_retried(registry: Registry, fast_limits: Limits) -> None:
    client = ScriptedClient(
        fail_first=1, failure=lambda r: ModelCallError("bad request", retryable=False)
    )
    with pytest.raises(NodeFailed, match="bad request"):
        run_sync(pipeline(node("gen")), "hi", client=client, registry=registry, limits=fast_limits)
    assert client.calls == 1


def test_timeout_is_retried(registry: Registry) -> None:
    slow_first = iter([1.0, 0.0, 0.0])
    client = ScriptedClient(latency_s=lambda r: next(slow_first))
    limits = Limits(timeout_s=0.05, backoff_s=0.001)
    result = run_sync(pipeline(node("gen")), "hi", client=client, registry=registry, limits=limits)
    assert result.answer == "hi" and client.calls == 2


def test_holes_and_switches_must_be_assigned(registry: Registry) -> None:
    hole = node("gen").model_copy(
        update={
            "params": (
                Param(name="models", value=("m",)),
                Param(name="samples", value=Choice(options=(1, 2))),
            )
        }
    )
    with pytest.raises(PipelineNotConcrete, match=r"gen\.samples"):
        run_sync(pipeline(hole), "q", client=ScriptedClient(), registry=registry)
    switched = pipeline(node("gen")).model_copy(
        update={
            "switches": (
                Switch(name="x.enabled", kind="optional", value=Choice(options=(True, False))),
            )
        }
    )
    with pytest.raises(PipelineNotConcrete, match="assign them"):
        run_sync(switched, "q", client=ScriptedClient(), registry=registry)


def test_invalid_params_name_the_node(registry: Registry) -> None:
    with pytest.raises(InvalidNode, match="node `gen`"):
        run_sync(pipeline(node("gen", samples=0)), "q", client=ScriptedClient(), registry=registry)
    with pytest.raises(InvalidNode, match="unknown layer kind"):
        run_sync(pipeline(node("x", "nope")), "q", client=ScriptedClient(), registry=registry)


def test_model_aliases_resolve_through_the_models_block(registry: Registry) -> None:
    from archon.ir import ModelSpec

    p = pipeline(node("gen", models=["small"])).model_copy(
        update={"models": (ModelSpec(alias="small", model="local/smollm2-135m"),)}
    )
    client = ScriptedClient()
    run_sync(p, "q", client=client, registry=registry)
    assert client.requests[0].model == "local/smollm2-135m"


def _local_intervals(client: ScriptedClient) -> list[tuple[float, float]]:
    return sorted(
        iv
        for r, iv in zip(client.requests, client.intervals, strict=True)
        if r.model.startswith("local/")
    )


def test_local_samples_reach_the_batching_engine_together(registry: Registry) -> None:
    client = ScriptedClient(latency_s=0.05)
    p = pipeline(node("gen", models=["local/tiny"], samples=4))
    run_sync(p, "q", client=client, registry=registry)
    local = _local_intervals(client)
    assert len(local) == 4 and max(start for start, _ in local) < min(end for _, end in local)


def test_local_concurrency_one_queues_local_calls(registry: Registry) -> None:
    client = ScriptedClient(latency_s=0.01)
    p = pipeline(node("gen", models=["local/tiny", "remote/x"], samples=4))
    run_sync(p, "q", client=client, registry=registry, limits=Limits(local_concurrency=1))
    local = _local_intervals(client)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(local))
    assert client.max_in_flight >= 2  # the remote samples still ran alongside


def test_run_many_shares_one_limiter(registry: Registry) -> None:
    client = ScriptedClient(latency_s=0.02)
    limits = Limits(max_concurrency=3)
    p = pipeline(node("gen", samples=2))

    async def main() -> list[int]:
        return [
            item.index
            async for item in run_many(
                p,
                [f"q{i}" for i in range(10)],
                client=client,
                registry=registry,
                limits=limits,
                max_in_flight=10,
            )
        ]

    indices = asyncio.run(main())
    assert sorted(indices) == list(range(10))
    assert client.max_in_flight == 3
    assert client.calls == 20


def test_run_many_reports_budget_failures_as_items(registry: Registry) -> None:
    client = ScriptedClient()
    p = pipeline(node("gen", samples=3), budget=Budget(calls=2))

    async def main() -> list[object]:
        return [
            item.error async for item in run_many(p, ["a", "b"], client=client, registry=registry)
        ]

    errors = asyncio.run(main())
    assert len(errors) == 2 and all(isinstance(e, BudgetExceeded) for e in errors)
    assert client.calls <= 4


def test_run_level_budget_stops_later_items(registry: Registry) -> None:
    client = ScriptedClient()
    p = pipeline(node("gen"))

    async def main() -> list[bool]:
        return [
            item.ok
            async for item in run_many(
                p,
                [f"q{i}" for i in range(5)],
                client=client,
                registry=registry,
                budget=Budget(calls=3),
                max_in_flight=1,
            )
        ]

    oks = asyncio.run(main())
    assert oks == [True, True, True, False, False]
    assert client.calls == 3


def test_seconds_budget_is_enforced(registry: Registry) -> None:
    client = ScriptedClient(latency_s=1.0)
    with pytest.raises(BudgetExceeded) as info:
        run_sync(
            pipeline(node("gen"), budget=Budget(seconds=0.1)), "q", client=client, registry=registry
        )
    assert info.value.limit == "seconds"


def test_multi_turn_conversation_feeds_answers_back(registry: Registry) -> None:
    client = ScriptedClient(lambda r: f"answer{sum(m.role == 'user' for m in r.messages)}")
    results = asyncio.run(
        run_conversation(
            pipeline(node("gen")), ["first", "second"], client=client, registry=registry
        )
    )
    assert [r.answer for r in results] == ["answer1", "answer2"]
    second = client.requests[1].messages
    assert [m.role for m in second][-3:] == ["user", "assistant", "user"]
    assert second[-2].content == "answer1"


def test_conversation_query_must_end_with_user(registry: Registry) -> None:
    from archon.errors import ArchonError

    with pytest.raises(ArchonError, match="end with a user message"):
        asyncio.run(
            run(
                pipeline(node("gen")),
                [Message(role="assistant", content="x")],
                client=ScriptedClient(),
                registry=registry,
            )
        )
