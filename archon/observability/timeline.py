"""A JSONL trace read back as queries, nodes and calls, with each query's critical path.

:func:`load_run` reads a trace file (:func:`archon.runtime.trace.read_run`) and groups it:

- a :class:`QueryView` per query (per query index; a file that several runs appended to, or
  a search's trials, holds one per run: a node that appears again starts a new one);
- in each, a :class:`NodeView` per node: from its ``"event": "node"`` line when the trace
  has them (start, end, inputs, the gates it waited for, skipped), else *derived* from its
  calls (first call's start to last call's end; kind, inputs and skips unknown);
- the node's calls, and the early-exit stages of the query.

The critical path of a query is the chain of nodes that decided when it ended: from the node
that finished last, back through the input (or awaited gate) that finished last, to a node
with none. It needs recorded dependencies, so it is None for traces without node lines.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from archon.runtime.trace import CallRecord, NodeRecord, StageRecord, TraceFile, read_run


class _CallTotals:
    """Token, cost and cache-hit totals over a view's ``calls``."""

    calls: tuple[CallRecord, ...]

    @property
    def tokens_in(self) -> int:
        return sum(c.tokens_in for c in self.calls)

    @property
    def tokens_out(self) -> int:
        return sum(c.tokens_out for c in self.calls)

    @property
    def usd(self) -> float:
        return sum(c.usd for c in self.calls)

    @property
    def cache_hits(self) -> int:
        return sum(1 for c in self.calls if c.cache_hit)


@dataclass(frozen=True)
class NodeView(_CallTotals):
    """One node of one query: when it ran and the calls it made.

    ``kind`` is None and ``recorded`` False when the trace has no node line for it (the
    view was derived from its calls).
    """

    node_id: str
    kind: str | None
    start: float
    end: float
    calls: tuple[CallRecord, ...] = ()
    inputs: tuple[str, ...] = ()
    waits_for: tuple[str, ...] = ()
    skipped: bool = False
    error: str | None = None
    recorded: bool = True

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def errors(self) -> int:
        return sum(1 for c in self.calls if c.error is not None)


@dataclass(frozen=True)
class QueryView:
    """One query: its nodes (by start time, skipped ones last), its early-exit stages and
    its critical path (node ids in order; None when the trace records no dependencies)."""

    index: int | None
    nodes: tuple[NodeView, ...]
    stages: tuple[StageRecord, ...] = ()
    critical_path: tuple[str, ...] | None = None

    @property
    def start(self) -> float:
        return min((n.start for n in self.nodes), default=0.0)

    @property
    def end(self) -> float:
        return max((n.end for n in self.nodes), default=0.0)

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def calls(self) -> tuple[CallRecord, ...]:
        return tuple(c for n in self.nodes for c in n.calls)

    @property
    def exited_at(self) -> str | None:
        return next((s.node_id for s in self.stages if s.exit), None)

    def node(self, node_id: str) -> NodeView:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(node_id)


@dataclass(frozen=True)
class RunView(_CallTotals):
    """A whole trace file: its queries in start order, and whether it recorded nodes."""

    queries: tuple[QueryView, ...]
    has_nodes: bool
    calls: tuple[CallRecord, ...] = field(default=())

    @property
    def start(self) -> float:
        return min((q.start for q in self.queries if q.nodes), default=0.0)

    @property
    def end(self) -> float:
        return max((q.end for q in self.queries if q.nodes), default=0.0)

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)


def load_run(path: str | Path) -> RunView:
    """Read and group a JSONL trace file (errors as :func:`~archon.runtime.trace.read_run`)."""
    return build_run(read_run(path))


def build_run(trace: TraceFile) -> RunView:
    """Group the records of a trace into queries and nodes."""
    has_nodes = bool(trace.nodes)
    by_query: dict[int | None, list[NodeRecord]] = defaultdict(list)
    for record in trace.nodes:
        by_query[record.query_index].append(record)
    calls: dict[int | None, list[CallRecord]] = defaultdict(list)
    for call in trace.calls:
        calls[call.query_index].append(call)
    stages: dict[int | None, list[StageRecord]] = defaultdict(list)
    for stage in trace.stages:
        stages[stage.query_index].append(stage)
    queries: list[QueryView] = []
    for index in dict.fromkeys([*by_query, *calls, *stages]):
        if has_nodes and by_query.get(index):
            queries.extend(_recorded(index, by_query[index], calls[index], stages[index]))
        else:
            queries.append(_derived(index, calls[index], stages[index]))
    queries.sort(key=lambda q: (q.start, -1 if q.index is None else q.index))
    return RunView(tuple(queries), has_nodes, tuple(trace.calls))


def _segments(records: Sequence[NodeRecord]) -> list[list[NodeRecord]]:
    """Node lines of one query index split into runs: a node seen again starts a new run."""
    segments: list[list[NodeRecord]] = []
    seen: set[str] = set()
    for record in sorted(records, key=lambda r: (r.started_at, r.finished_at)):
        if not segments or record.node_id in seen:
            segments.append([])
            seen = set()
        segments[-1].append(record)
        seen.add(record.node_id)
    return segments


def _recorded(
    index: int | None,
    records: Sequence[NodeRecord],
    calls: Sequence[CallRecord],
    stages: Sequence[StageRecord],
) -> list[QueryView]:
    segments = _segments(records)
    starts = [min(r.started_at for r in segment) for segment in segments]
    owned: list[dict[str, list[CallRecord]]] = [defaultdict(list) for _ in segments]
    for call in sorted(calls, key=lambda c: c.started_at):
        k = _segment_of(call.started_at, starts)
        owned[k][call.node_id].append(call)
    seen_gates: dict[str, int] = defaultdict(int)
    staged: list[list[StageRecord]] = [[] for _ in segments]
    for stage in stages:
        holders = [k for k, s in enumerate(segments) if any(r.node_id == stage.node_id for r in s)]
        if holders:
            k = holders[min(seen_gates[stage.node_id], len(holders) - 1)]
            staged[k].append(stage)
        seen_gates[stage.node_id] += 1
    views = []
    for k, segment in enumerate(segments):
        nodes = []
        for record in segment:
            node_calls = tuple(owned[k].pop(record.node_id, []))
            end = max([record.finished_at, *(_call_end(c) for c in node_calls)])
            nodes.append(
                NodeView(
                    node_id=record.node_id,
                    kind=record.kind,
                    start=record.started_at,
                    end=end,
                    calls=node_calls,
                    inputs=record.inputs,
                    waits_for=record.waits_for,
                    skipped=record.skipped,
                    error=record.error,
                )
            )
        # Calls of nodes without a line (a node still running when the trace stopped).
        nodes.extend(_from_calls(node_id, owned_calls) for node_id, owned_calls in owned[k].items())
        ordered = _ordered(nodes)
        views.append(QueryView(index, ordered, tuple(staged[k]), critical_path(ordered)))
    return views


def _segment_of(at: float, starts: Sequence[float]) -> int:
    """The last segment that started at or before ``at`` (calls start after their node)."""
    chosen = 0
    for k, start in enumerate(starts):
        if start <= at + 1e-6:
            chosen = k
    return chosen


def _derived(
    index: int | None, calls: Sequence[CallRecord], stages: Sequence[StageRecord]
) -> QueryView:
    grouped: dict[str, list[CallRecord]] = defaultdict(list)
    for call in sorted(calls, key=lambda c: c.started_at):
        grouped[call.node_id].append(call)
    nodes = _ordered([_from_calls(node_id, group) for node_id, group in grouped.items()])
    return QueryView(index, nodes, tuple(stages), None)


def _from_calls(node_id: str, calls: Sequence[CallRecord]) -> NodeView:
    return NodeView(
        node_id=node_id,
        kind=None,
        start=min(c.started_at for c in calls),
        end=max(_call_end(c) for c in calls),
        calls=tuple(calls),
        recorded=False,
    )


def _call_end(call: CallRecord) -> float:
    return call.started_at + call.latency_s


def _ordered(nodes: Iterable[NodeView]) -> tuple[NodeView, ...]:
    return tuple(sorted(nodes, key=lambda n: (n.skipped, n.start, n.end)))


def critical_path(nodes: Sequence[NodeView]) -> tuple[str, ...] | None:
    """The nodes that decided when the query ended, first to last (None when any node's
    dependencies were not recorded; empty when nothing ran)."""
    if any(not n.recorded for n in nodes):
        return None
    ran = {n.node_id: n for n in nodes if not n.skipped}
    if not ran:
        return ()
    current = max(ran.values(), key=lambda n: (n.end, n.start))
    path = [current.node_id]
    while True:
        deps = [ran[d] for d in (*current.inputs, *current.waits_for) if d in ran]
        deps = [d for d in deps if d.node_id not in path]
        if not deps:
            break
        current = max(deps, key=lambda n: (n.end, n.start))
        path.append(current.node_id)
    return tuple(reversed(path))
