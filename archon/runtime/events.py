"""Query and node events: what the executor tells a trace sink that wants more than calls.

A trace sink (:class:`~archon.runtime.trace.TraceSink`) receives one
:class:`~archon.runtime.trace.CallRecord` per model call. A sink that also implements
:class:`NodeSink` -- :class:`~archon.runtime.trace.JsonlTrace`,
:class:`~archon.runtime.trace.MemoryTrace`, the OpenTelemetry sink of
:mod:`archon.observability.otel` -- hears when each query and each node starts and ends, and
which nodes an early exit skipped. The executor asks once per query whether its sink is one,
so a sink without these methods (or no sink) costs nothing per node.

:class:`FanOut` passes everything to several sinks at once (a JSONL file and OpenTelemetry):
each gets the prompts only if it asked for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from archon.runtime.trace import CallRecord, NodeRecord, StageRecord, StageSink, TraceSink


@dataclass(frozen=True)
class NodeStarted:
    """A node began, its inputs ready.

    Attributes:
        node_id, kind: the node and its layer kind.
        query_index: the query (None for a single run).
        started_at: wall-clock seconds (``time.time()``).
        inputs: the nodes whose output it reads.
        waits_for: the early-exit gates it waited for.
        params: the node's validated parameters (a sink that shows them serializes them).
    """

    node_id: str
    kind: str
    query_index: int | None
    started_at: float
    inputs: tuple[str, ...] = ()
    waits_for: tuple[str, ...] = ()
    params: BaseModel | None = None


@runtime_checkable
class NodeSink(Protocol):
    """A trace sink that also hears about queries and nodes (optional for sinks).

    The executor calls, per query: ``query_started``, then ``node_started`` /
    ``node_finished`` for each node that runs (``node_finished`` alone, with ``skipped``
    set, for a node an early exit skipped), the calls' records in between, the stages, and
    ``query_finished`` last (``error`` set, redacted, when the query failed). All calls come
    from the event loop thread.
    """

    def query_started(self, query_index: int | None, at: float) -> None: ...

    def query_finished(self, query_index: int | None, at: float, error: str | None) -> None: ...

    def node_started(self, event: NodeStarted) -> None: ...

    def node_finished(self, record: NodeRecord) -> None: ...


class FanOut:
    """A trace sink that passes every call record and stage to several sinks (build one with
    :func:`fan_out`, which adds the node events when one of the sinks hears them).

    ``include_prompts`` is true when one of them wants prompts; a sink that did not ask gets
    its call records without the prompt and the answer.
    """

    def __init__(self, sinks: Iterable[TraceSink]) -> None:
        self.sinks: tuple[TraceSink, ...] = tuple(sinks)
        self._stages = tuple(s for s in self.sinks if isinstance(s, StageSink))
        self._nodes = tuple(s for s in self.sinks if isinstance(s, NodeSink))

    @property
    def include_prompts(self) -> bool:
        return any(s.include_prompts for s in self.sinks)

    def record(self, record: CallRecord) -> None:
        bare: CallRecord | None = None
        for sink in self.sinks:
            if sink.include_prompts or (record.prompt is None and record.output is None):
                sink.record(record)
                continue
            if bare is None:
                bare = record.model_copy(update={"prompt": None, "output": None})
            sink.record(bare)

    def record_stage(self, record: StageRecord) -> None:
        for sink in self._stages:
            sink.record_stage(record)

    def close(self) -> None:
        """Close every sink that can be closed (each one even if another fails)."""
        errors: list[BaseException] = []
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as error:
                    errors.append(error)
        if errors:
            raise errors[0]


class NodeFanOut(FanOut):
    """A :class:`FanOut` that also passes the query and node events on (to the sinks that
    hear them)."""

    def query_started(self, query_index: int | None, at: float) -> None:
        for sink in self._nodes:
            sink.query_started(query_index, at)

    def query_finished(self, query_index: int | None, at: float, error: str | None) -> None:
        for sink in self._nodes:
            sink.query_finished(query_index, at, error)

    def node_started(self, event: NodeStarted) -> None:
        for sink in self._nodes:
            sink.node_started(event)

    def node_finished(self, record: NodeRecord) -> None:
        for sink in self._nodes:
            sink.node_finished(record)


def fan_out(*sinks: TraceSink | None) -> TraceSink | None:
    """One sink for the given ones: None when there are none, the sink itself when there is
    one, else a :class:`FanOut` -- a :class:`NodeFanOut` when one of them is a
    :class:`NodeSink` (so the executor builds node events only when someone hears them)."""
    present = [s for s in sinks if s is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    if any(isinstance(s, NodeSink) for s in present):
        return NodeFanOut(present)
    return FanOut(present)
