"""What the executor tells a sink that hears node events: every node's start and end, its
inputs and the gates it waited for, skips, failures (redacted), and the query around them."""

from __future__ import annotations

import pytest

from archon.ir import Pipeline
from archon.layers.registry import Registry
from archon.runtime import MemoryTrace, run_sync
from archon.runtime.clients.base import ModelCallError
from archon.runtime.clients.fake import ScriptedClient
from archon.runtime.events import NodeStarted, fan_out
from archon.runtime.secrets import Redactor
from archon.runtime.trace import CallRecord, NodeRecord

from .conftest import scripted


class Recorder(MemoryTrace):
    """A MemoryTrace that also keeps the start and query events, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, object]] = []

    def query_started(self, query_index: int | None, at: float) -> None:
        self.events.append(("query_started", query_index))

    def query_finished(self, query_index: int | None, at: float, error: str | None) -> None:
        self.events.append(("query_finished", error))

    def node_started(self, event: NodeStarted) -> None:
        self.events.append(("node_started", event))

    def node_finished(self, record: NodeRecord) -> None:
        super().node_finished(record)
        self.events.append(("node_finished", record))


def test_events_of_a_run(traced: Pipeline, registry: Registry) -> None:
    sink = Recorder()
    run_sync(traced, "q", client=scripted(), registry=registry, trace=sink)
    kinds = [kind for kind, _ in sink.events]
    assert kinds[0] == "query_started" and kinds[-1] == "query_finished"
    assert sink.events[-1] == ("query_finished", None)
    started = {e.node_id: e for kind, e in sink.events if isinstance(e, NodeStarted)}
    assert set(started) == {"drafts", "other", "merged", "final", "voted", "exit_if_1"}
    assert started["drafts"].params is not None and started["drafts"].kind == "generate"
    assert started["final"].waits_for == () and started["merged"].inputs == ("drafts", "other")
    nodes = {n.node_id: n for n in sink.nodes}
    assert nodes["extra"].skipped and nodes["extra"].waits_for == ("exit_if_1",)
    assert "extra" not in started  # a skipped node never starts
    for record in sink.records:  # every call lies inside its node
        node = nodes[record.node_id]
        assert node.started_at <= record.started_at <= node.finished_at


def test_a_failing_node_is_recorded_redacted(
    traced: Pipeline, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "kq-19be0c7d5a4f3e2d1c0b"
    monkeypatch.setenv("NODE_EVENTS_API_KEY", key)
    client = ScriptedClient(
        fail_when=lambda r: r.model == "anthropic/big",
        failure=lambda r: ModelCallError(f"denied for {key}", model=r.model, retryable=False),
    )
    sink = Recorder()
    with pytest.raises(Exception, match="failed"):
        run_sync(
            traced,
            "q",
            client=client,
            registry=registry,
            trace=sink,
            redactor=Redactor.from_environ(),
        )
    nodes = {n.node_id: n for n in sink.nodes}
    assert nodes["other"].error is not None and "[REDACTED]" in nodes["other"].error
    assert key not in repr(sink.events)
    kind, error = sink.events[-1]
    assert kind == "query_finished" and isinstance(error, str) and key not in error


class CallsOnly:
    """A sink without node events: the executor never builds them for it."""

    include_prompts = False

    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def record(self, record: CallRecord) -> None:
        self.records.append(record)


def test_a_calls_only_sink_gets_calls_only(traced: Pipeline, registry: Registry) -> None:
    calls = CallsOnly()
    run_sync(traced, "q", client=scripted(), registry=registry, trace=calls)
    assert len(calls.records) == 5
    both = Recorder()
    run_sync(traced, "q", client=scripted(), registry=registry, trace=fan_out(CallsOnly(), both))
    assert len(both.nodes) == 7 and len(both.records) == 5
