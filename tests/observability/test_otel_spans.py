"""The OpenTelemetry sink: the span tree of a scripted run, its attributes, prompts only when
asked for, the caller's trace continued, and never a key (in-memory exporter)."""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import pytest

from archon.ir import Pipeline
from archon.layers.registry import Registry
from archon.observability import otel as otel_module
from archon.observability.otel import (
    Otel,
    OtelMissing,
    content_requested,
    otel_requested,
    require_otel,
)
from archon.runtime import MemoryTrace, run_many, run_sync
from archon.runtime.clients.base import ModelCallError
from archon.runtime.clients.fake import ScriptedClient
from archon.runtime.events import FanOut, NodeSink, NodeStarted, fan_out
from archon.runtime.secrets import REDACTED, Redactor
from archon.runtime.trace import CallRecord, NodeRecord
from archon.values import Message

from .conftest import scripted

pytest.importorskip("opentelemetry.sdk")

NODES = {"drafts", "other", "merged", "final", "voted", "exit_if_1", "extra"}


def _tree(exporter: Any) -> tuple[Any, dict[int, list[Any]]]:
    """The root span and each span's children (by parent span id)."""
    finished = exporter.get_finished_spans()
    roots = [s for s in finished if s.parent is None]
    assert len(roots) == 1, [s.name for s in roots]
    children: dict[int, list[Any]] = {}
    for span in finished:
        if span.parent is not None:
            children.setdefault(span.parent.span_id, []).append(span)
    return roots[0], children


def _kids(children: dict[int, list[Any]], span: Any) -> list[Any]:
    return children.get(span.context.span_id, [])


def test_a_scripted_run_is_a_span_tree(spans: Any, traced: Pipeline, registry: Registry) -> None:
    exporter, provider = spans
    sink = Otel(provider, redactor=Redactor()).run("archon run", {"archon.pipeline": "traced"})
    result = run_sync(traced, "What is 2 + 2?", client=scripted(), registry=registry, trace=sink)
    sink.close()
    assert result.exited_at == "exit_if_1"

    root, children = _tree(exporter)
    assert root.name == "archon run" and root.attributes["archon.pipeline"] == "traced"
    nodes = {s.attributes["archon.node.id"]: s for s in _kids(children, root)}
    assert set(nodes) == NODES
    trace_ids = {s.context.trace_id for s in exporter.get_finished_spans()}
    assert trace_ids == {root.context.trace_id}

    drafts = nodes["drafts"]
    assert drafts.name == "generate drafts"
    assert drafts.attributes["archon.node.kind"] == "generate"
    assert drafts.attributes["archon.node.param.samples"] == 2
    assert '"samples": 2' in drafts.attributes["archon.node.params"]
    assert tuple(nodes["merged"].attributes["archon.node.inputs"]) == ("drafts", "other")
    assert nodes["extra"].attributes["archon.node.skipped"] is True
    assert _kids(children, nodes["extra"]) == []

    calls = _kids(children, drafts)
    assert sorted(c.attributes["archon.sample_index"] for c in calls) == [0, 1]
    for call in calls:
        attributes = call.attributes
        assert call.name == "chat openai/small"
        assert call.kind.name == "CLIENT"
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.provider.name"] == "openai"
        assert attributes["gen_ai.request.model"] == "openai/small"
        assert attributes["gen_ai.usage.input_tokens"] > 0
        assert attributes["gen_ai.usage.output_tokens"] > 0
        assert attributes["archon.cache_hit"] is False
        assert attributes["archon.cost.usd"] == 0.0
        assert attributes["archon.attempts"] == 1
        assert attributes["archon.node.id"] == "drafts"
        assert not call.events  # prompts were not asked for
        assert drafts.start_time <= call.start_time <= call.end_time <= drafts.end_time
    (big,) = _kids(children, nodes["other"])
    assert big.attributes["gen_ai.provider.name"] == "anthropic"
    # merged read both branches: it started after the slower one ended.
    assert nodes["merged"].start_time >= nodes["other"].end_time
    assert nodes["merged"].start_time >= nodes["drafts"].end_time
    assert root.start_time <= min(s.start_time for s in nodes.values())
    assert root.end_time >= max(s.end_time for s in nodes.values())

    (stage,) = [e for e in root.events if e.name == "archon.stage"]
    assert stage.attributes["archon.exit"] is True
    assert tuple(stage.attributes["archon.exit.skipped"]) == ("extra",)
    assert nodes["exit_if_1"].attributes["archon.node.kind"] == "exit_if"


def test_each_query_of_a_batch_gets_a_span(
    spans: Any, traced: Pipeline, registry: Registry
) -> None:
    exporter, provider = spans
    sink = Otel(provider).run("archon eval")

    async def go() -> list[Any]:
        queries = ["q one", "q two", "q three"]
        return [
            item
            async for item in run_many(
                traced, queries, client=scripted(), registry=registry, trace=sink
            )
        ]

    items = asyncio.run(go())
    sink.close()
    assert all(item.ok for item in items)
    root, children = _tree(exporter)
    queries = {s.attributes["archon.query.index"]: s for s in _kids(children, root)}
    assert set(queries) == {0, 1, 2}
    for index, query in queries.items():
        assert query.name == f"query {index}"
        nodes = {s.attributes["archon.node.id"] for s in _kids(children, query)}
        assert nodes == NODES
        assert [e.name for e in query.events] == ["archon.stage"]
        for node in _kids(children, query):
            for call in _kids(children, node):
                assert call.attributes["archon.query.index"] == index


def test_prompts_and_answers_only_when_asked(
    spans: Any, traced: Pipeline, registry: Registry
) -> None:
    exporter, provider = spans
    sink = Otel(provider, include_prompts=True).run("archon run")
    run_sync(traced, "What is 2 + 2?", client=scripted("four"), registry=registry, trace=sink)
    sink.close()
    calls = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    assert calls
    for call in calls:
        names = [e.name for e in call.events]
        assert "gen_ai.user.message" in names and names[-1] == "gen_ai.choice"
        assert call.events[-1].attributes["content"] == "four"
    drafts = [c for c in calls if c.attributes["archon.node.id"] == "drafts"]
    assert any("What is 2 + 2?" in e.attributes["content"] for e in drafts[0].events)


KEY = "kq-7d1f0c9be3a54e21aa90f3"


def test_no_key_reaches_a_span(
    spans: Any, traced: Pipeline, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key in the environment, in the query, in the answers and in an error message: no
    span name, attribute, event or status holds it."""
    monkeypatch.setenv("LOOPBACK_PROVIDER_API_KEY", KEY)
    exporter, provider = spans
    redactor = Redactor.from_environ()
    otel = Otel(provider, redactor=redactor, include_prompts=True)

    sink = otel.run("archon run", {"archon.query": f"query with {KEY}"})
    echo = ScriptedClient(lambda r: f"the key is {KEY}, sk-{KEY}{KEY}")
    run_sync(
        traced, f"Use {KEY} please", client=echo, registry=registry, trace=sink, redactor=redactor
    )
    sink.close()

    failing = otel.run("archon run")
    broken = ScriptedClient(
        fail_when=lambda r: r.model == "anthropic/big",
        failure=lambda r: ModelCallError(f"401 for key {KEY}", model=r.model, retryable=False),
    )
    with pytest.raises(Exception, match="failed"):
        run_sync(
            traced, f"Use {KEY}", client=broken, registry=registry, trace=failing, redactor=redactor
        )
    failing.close()

    finished = exporter.get_finished_spans()
    assert len(finished) > 10
    assert any(s.status.status_code.name == "ERROR" for s in finished)
    assert any(REDACTED in e.attributes.get("content", "") for s in finished for e in s.events)
    for span in finished:
        assert KEY not in span.to_json(), span.name


def test_the_callers_trace_is_continued(spans: Any) -> None:
    exporter, provider = spans
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {"traceparent": f"00-{trace_id}-{parent_id}-01", "tracestate": "vendor=1"}
    sink = Otel(provider).run("archon serve", parent=headers)
    assert sink.trace_id == trace_id
    sink.close()
    bad = Otel(provider).run("archon serve", parent={"traceparent": "garbage"})
    bad.close()
    first, second = exporter.get_finished_spans()
    assert f"{first.context.trace_id:032x}" == trace_id
    assert f"{first.parent.span_id:016x}" == parent_id and first.parent.is_remote
    assert first.kind.name == "SERVER"
    assert second.parent is None and f"{second.context.trace_id:032x}" != trace_id


def test_calls_alone_still_make_node_spans(spans: Any) -> None:
    """A runtime that sends no node events (or an old trace replayed): nodes come from calls."""
    exporter, provider = spans
    sink = Otel(provider).run("archon run")
    for k, start in enumerate((100.0, 100.5)):
        sink.record(
            CallRecord(
                node_id="gen",
                model="m",
                sample_index=k,
                prompt_sha256="0" * 64,
                latency_s=1.0,
                started_at=start,
                finish_reason="length",
            )
        )
    sink.close()
    root, children = _tree(exporter)
    (node,) = _kids(children, root)
    assert node.name == "node gen"
    assert node.start_time == 100 * 10**9 and node.end_time == int(101.5 * 10**9)
    calls = _kids(children, node)
    assert [tuple(c.attributes["gen_ai.response.finish_reasons"]) for c in calls] == [
        ("length",)
    ] * 2
    assert "gen_ai.provider.name" not in calls[0].attributes


def test_node_events_around_calls(spans: Any) -> None:
    exporter, provider = spans
    sink = Otel(provider).run("archon run")
    assert isinstance(sink, NodeSink)
    sink.query_started(3, 10.0)
    sink.node_started(NodeStarted("a", "generate", 3, 10.0))
    sink.record(
        CallRecord(
            node_id="a",
            model="m",
            sample_index=0,
            prompt_sha256="0" * 64,
            latency_s=0.5,
            started_at=10.1,
            query_index=3,
            error="boom",
        )
    )
    sink.node_finished(
        NodeRecord(
            node_id="a",
            kind="generate",
            query_index=3,
            started_at=10.0,
            finished_at=10.7,
            error="boom",
        )
    )
    sink.query_finished(3, 10.8, "node a failed")
    sink.close()
    root, children = _tree(exporter)
    (query,) = _kids(children, root)
    (node,) = _kids(children, query)
    (call,) = _kids(children, node)
    assert query.status.status_code.name == node.status.status_code.name == "ERROR"
    assert call.status.description == "boom" and call.attributes["archon.error"] == "boom"
    assert query.end_time == int(10.8 * 10**9)


def test_fan_out_gives_prompts_only_to_who_asked() -> None:
    plain, shown = MemoryTrace(), MemoryTrace(include_prompts=True)
    sink = fan_out(plain, None, shown)
    assert isinstance(sink, FanOut) and sink.include_prompts
    assert fan_out(None, plain) is plain and fan_out() is None
    record = CallRecord(
        node_id="a",
        model="m",
        sample_index=0,
        prompt_sha256="0" * 64,
        prompt=(Message(role="user", content="hi"),),
        output="yo",
    )
    sink.record(record)
    sink.node_finished(NodeRecord(node_id="a", kind="generate", started_at=1.0, finished_at=2.0))
    assert plain.records[0].prompt is None and plain.records[0].output is None
    assert shown.records[0] == record
    assert len(plain.nodes) == len(shown.nodes) == 1


def test_export_needs_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    assert otel_requested(True, {}) and not otel_requested(False, {})
    assert otel_requested(False, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert not otel_requested(False, {"OTEL_EXPORTER_OTLP_ENDPOINT": " "})
    variable = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
    assert content_requested({variable: "true"}) and content_requested({variable: "1"})
    assert not content_requested({variable: "false"}) and not content_requested({})
    real = importlib.util.find_spec
    monkeypatch.setattr(
        otel_module.importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("opentelemetry") else real(name, *a),
    )
    with pytest.raises(OtelMissing, match=r"`otel` extra.*archon-pipe\[otel\]"):
        require_otel()
    with pytest.raises(OtelMissing):
        Otel.to_otlp()
