"""Concurrent execution of a concrete pipeline, one query or many.

Each node starts as soon as the nodes it reads from have finished (an ``asyncio.TaskGroup``
task per node waiting on its inputs' futures), so independent branches -- and, through
:class:`~archon.runtime.context.NodeContext`, the samples of one node -- run at the same time.
The first failing node cancels the rest and is reported as :class:`NodeFailed` with its id and
``.pipe`` line; :class:`~archon.runtime.budget.BudgetExceeded` passes through unchanged so that
evaluation and search can count it as a failed item.

The answer of a run is the text of the **first** candidate of the output node's
``Candidates`` (layers order candidates best first), or ``""`` with a warning when the output
holds no candidate.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial
from typing import Any

from pydantic import BaseModel, ConfigDict, SerializeAsAny, ValidationError

from archon.errors import ArchonError
from archon.ir import Budget, Node, Pipeline, is_hole
from archon.layers.base import ExitDecision, Gate, Layer, LayerParams
from archon.layers.registry import Registry
from archon.runtime.budget import BudgetExceeded, Meter
from archon.runtime.clients.base import ModelClient
from archon.runtime.concurrency import in_flight
from archon.runtime.context import NodeContext, QueryState
from archon.runtime.env import RunEnv, resolve_env
from archon.runtime.events import NodeSink, NodeStarted
from archon.runtime.streaming import StreamTap
from archon.runtime.trace import NodeRecord, StageRecord, StageSink
from archon.values import Candidates, Message, Payload, Usage

logger = logging.getLogger(__name__)

Query = str | Sequence[Message]


class PipelineNotConcrete(ArchonError):
    """The pipeline still has search holes; assign them (``--params`` or defaults) first."""


class InvalidNode(ArchonError):
    """A node's kind or parameters are not valid for the registry in use."""


class NodeFailed(ArchonError):
    """A node raised while running. Carries the node id and its source span."""

    def __init__(self, node: Node, cause: BaseException, message: str) -> None:
        self.node_id = node.id
        self.span = node.span
        self.cause = cause
        where = f" ({node.span.path}:{node.span.line})" if node.span is not None else ""
        super().__init__(f"node `{node.id}`{where} failed: {message}")


class ExitRecord(BaseModel):
    """What one early-exit gate decided for a query (see :class:`archon.layers.base.Gate`).

    Attributes:
        node: the gate's node id.
        exit: whether the pipeline stopped there.
        reason: the condition's reading, e.g. ``leading candidate passes 3/3``.
        skipped: the nodes its exit skipped (empty when it did not fire).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    node: str
    exit: bool
    reason: str
    skipped: tuple[str, ...] = ()


class RunResult(BaseModel):
    """The outcome of one query.

    Attributes:
        answer: text of the first candidate of the output node (``""`` if there is none).
        output: the output node's payload.
        node_outputs: ``(node_id, payload)`` for every node, in pipeline order.
        usage: calls, tokens and USD actually spent (cache hits are free).
        seconds: wall time of the query.
        cache_hits: single-sample calls answered from the cache.
        warnings: recoverable problems reported by layers or the runtime.
        exits: the decision of every early-exit gate that ran, in pipeline order; the
            last one holds ``exit=True`` and the skipped nodes when the query stopped early.
    """

    model_config = ConfigDict(frozen=True)

    answer: str
    output: SerializeAsAny[Payload]
    node_outputs: tuple[tuple[str, SerializeAsAny[Payload]], ...]
    usage: Usage
    seconds: float
    cache_hits: int = 0
    warnings: tuple[str, ...] = ()
    exits: tuple[ExitRecord, ...] = ()

    @property
    def exited_at(self) -> str | None:
        """The gate the query stopped at (None: every stage ran)."""
        return next((record.node for record in self.exits if record.exit), None)

    @property
    def skipped(self) -> tuple[str, ...]:
        """The nodes an early exit skipped."""
        return next((record.skipped for record in self.exits if record.exit), ())

    def node_output(self, node_id: str) -> Payload:
        """The payload node ``node_id`` produced."""
        for key, payload in self.node_outputs:
            if key == node_id:
                return payload
        raise KeyError(node_id)


@dataclass(frozen=True)
class ItemResult:
    """One query of :func:`run_many`: its position, and a result or a typed error."""

    index: int
    query: tuple[Message, ...]
    result: RunResult | None = None
    error: ArchonError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class PreparedNode:
    """A node with its layer instance and validated parameters."""

    node: Node
    layer: Layer
    params: LayerParams


@dataclass(frozen=True)
class Prepared:
    """A pipeline checked and ready to execute any number of times."""

    pipeline: Pipeline
    nodes: tuple[PreparedNode, ...]
    aliases: Mapping[str, str]


def as_conversation(query: Query) -> tuple[Message, ...]:
    """A query as messages: a string becomes one user message."""
    if isinstance(query, str):
        return (Message(role="user", content=query),)
    messages = tuple(query)
    if not messages or messages[-1].role != "user":
        raise ArchonError("a query conversation must be non-empty and end with a user message")
    return messages


def prepare(pipeline: Pipeline, registry: Registry) -> Prepared:
    """Check that ``pipeline`` is concrete and validate every node's parameters."""
    holes = [f"{n.id}.{p.name}" for n in pipeline.nodes for p in n.params if is_hole(p.value)]
    if pipeline.switches or holes:
        names = [s.name for s in pipeline.switches] + holes
        shown = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
        raise PipelineNotConcrete(
            f"pipeline '{pipeline.name}' has unassigned search holes ({shown}); assign them"
            " first (archon run --params best.json, or archon.compiler.structure.assign)"
        )
    prepared = []
    for node in pipeline.nodes:
        where = f" ({node.span})" if node.span is not None else ""
        try:
            layer_cls = registry.get(node.kind)
        except ArchonError as e:
            raise InvalidNode(f"node `{node.id}`{where}: {e}") from e
        try:
            params = layer_cls.validate_params(node.arguments())
        except ValidationError as e:
            raise InvalidNode(f"node `{node.id}`{where}: invalid parameters: {e}") from e
        prepared.append(PreparedNode(node, layer_cls(), params))
    ids = {n.id for n in pipeline.nodes}
    if pipeline.output not in ids:
        raise InvalidNode(f"output node `{pipeline.output}` is not in pipeline '{pipeline.name}'")
    aliases = {spec.alias: spec.model for spec in pipeline.models}
    return Prepared(pipeline, tuple(prepared), aliases)


def _answer(output: Payload, warnings: list[str]) -> str:
    if isinstance(output, Candidates) and output.items:
        return output.items[0].text
    warnings.append(f"output is {type(output).__name__} with no candidate: answer is empty")
    return ""


def _leaf(error: BaseException) -> BaseException:
    """The first real error inside (possibly nested) exception groups from task groups."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


@dataclass
class _Stages:
    """The early-exit gates of one query's run and what each decided.

    A node waits for the decision of every gate written before it; the first gate that
    decides to exit skips every later node.
    """

    gates: tuple[str, ...]
    decisions: dict[str, asyncio.Future[ExitDecision | None]]
    skipped: list[str]
    feeds: dict[str, set[str]]
    """Per gate, the nodes it reads from, directly or not (they never wait for it)."""

    @classmethod
    def of(cls, prepared: Prepared, loop: asyncio.AbstractEventLoop) -> _Stages:
        gates = tuple(item.node.id for item in prepared.nodes if isinstance(item.layer, Gate))
        inputs = {item.node.id: item.node.inputs for item in prepared.nodes}
        feeds = {gate: _upstream(gate, inputs) for gate in gates}
        return cls(gates, {gate: loop.create_future() for gate in gates}, [], feeds)

    def before(self, node_id: str, order: Mapping[str, int]) -> tuple[str, ...]:
        """The gates ``node_id`` waits for: those written before it that do not read it."""
        return tuple(
            gate
            for gate in self.gates
            if order[gate] < order[node_id] and node_id not in self.feeds[gate]
        )

    async def stopped(self, gates: Sequence[str]) -> bool:
        """Whether one of ``gates`` decided to exit (waits for their decisions)."""
        for gate in gates:
            decision = await self.decisions[gate]
            if decision is not None and decision.exit:
                return True
        return False

    def records(self, order: Sequence[str]) -> tuple[ExitRecord, ...]:
        records = []
        for gate in self.gates:
            decision = self.decisions[gate].result()
            if decision is None:  # the gate itself was skipped
                continue
            skipped = tuple(n for n in order if n in self.skipped) if decision.exit else ()
            records.append(
                ExitRecord(node=gate, exit=decision.exit, reason=decision.reason, skipped=skipped)
            )
            if decision.exit:
                break
        return tuple(records)


def _upstream(node_id: str, inputs: Mapping[str, Sequence[str]]) -> set[str]:
    """Every node ``node_id`` reads from, directly or through others."""
    found: set[str] = set()
    todo = list(inputs.get(node_id, ()))
    while todo:
        source = todo.pop()
        if source not in found:
            found.add(source)
            todo.extend(inputs.get(source, ()))
    return found


async def _run_node(
    item: PreparedNode,
    state: QueryState,
    futures: Mapping[str, asyncio.Future[Payload]],
    stages: _Stages,
    waits_for: Sequence[str],
    events: NodeSink | None = None,
) -> None:
    node_id = item.node.id
    if waits_for and await stages.stopped(waits_for):
        stages.skipped.append(node_id)
        if node_id in stages.decisions:
            stages.decisions[node_id].set_result(None)
        futures[node_id].set_result(Candidates())
        if events is not None:
            _node_finished(events, item, state, waits_for, None)
        return
    inputs = [await futures[source] for source in item.node.inputs]
    ctx = NodeContext(state, node_id)
    started = _node_started(events, item, state, waits_for) if events is not None else 0.0
    failure: str | None = "cancelled"
    try:
        if isinstance(item.layer, Gate):
            output, decision = await item.layer.gate(ctx, item.params, inputs)
            stages.decisions[node_id].set_result(decision)
        else:
            output = await item.layer.run(ctx, item.params, inputs)
        failure = None
    except Exception as e:
        cause = _leaf(e)
        message = state.env.redactor.redact(str(cause) or type(cause).__name__)
        failure = message
        if isinstance(cause, BudgetExceeded):
            raise cause from None
        raise NodeFailed(item.node, cause, message) from cause
    finally:
        if events is not None:
            _node_finished(events, item, state, waits_for, started, failure)
    futures[node_id].set_result(output)


def _node_started(
    events: NodeSink, item: PreparedNode, state: QueryState, waits_for: Sequence[str]
) -> float:
    started = time.time()
    events.node_started(
        NodeStarted(
            node_id=item.node.id,
            kind=item.node.kind,
            query_index=state.query_index,
            started_at=started,
            inputs=item.node.inputs,
            waits_for=tuple(waits_for),
            params=item.params,
        )
    )
    return started


def _node_finished(
    events: NodeSink,
    item: PreparedNode,
    state: QueryState,
    waits_for: Sequence[str],
    started: float | None,
    error: str | None = None,
) -> None:
    """Report a node that ran from ``started``, or was skipped by an early exit (None)."""
    now = time.time()
    events.node_finished(
        NodeRecord(
            node_id=item.node.id,
            kind=item.node.kind,
            query_index=state.query_index,
            started_at=now if started is None else started,
            finished_at=now,
            inputs=item.node.inputs,
            waits_for=tuple(waits_for),
            error=error,
            skipped=started is None,
        )
    )


async def execute(prepared: Prepared, state: QueryState) -> RunResult:
    """Run every node of ``prepared`` for the query in ``state``.

    Nodes after an early-exit gate start once it has decided; when it exits they are
    skipped and the gate's output is the answer. A trace sink that is a
    :class:`~archon.runtime.events.NodeSink` hears when the query and each node start and
    end, and which nodes were skipped (no sink, or a calls-only one, costs nothing per node).
    """
    trace = state.env.trace
    events = trace if isinstance(trace, NodeSink) else None
    if events is None:
        return await _execute(prepared, state, None)
    events.query_started(state.query_index, time.time())
    failure: str | None = "cancelled"
    try:
        result = await _execute(prepared, state, events)
        failure = None
        return result
    except Exception as error:
        failure = state.env.redactor.redact(str(error) or type(error).__name__)
        raise
    finally:
        events.query_finished(state.query_index, time.time(), failure)


async def _execute(prepared: Prepared, state: QueryState, events: NodeSink | None) -> RunResult:
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    futures: dict[str, asyncio.Future[Payload]] = {
        item.node.id: loop.create_future() for item in prepared.nodes
    }
    stages = _Stages.of(prepared, loop)
    order = {item.node.id: k for k, item in enumerate(prepared.nodes)}
    seconds = state.meter.budget.seconds
    remaining = None if seconds is None else max(0.0, seconds - state.meter.seconds)
    try:
        async with asyncio.timeout(remaining) as deadline:
            async with asyncio.TaskGroup() as group:
                for item in prepared.nodes:
                    waits = stages.before(item.node.id, order)
                    task = _run_node(item, state, futures, stages, waits, events)
                    group.create_task(task, name=item.node.id)
    except BaseExceptionGroup as failures:
        first = failures.exceptions[0]
        raise first from (first.__cause__ if isinstance(first, NodeFailed) else None)
    except TimeoutError as e:
        if deadline.expired():
            meter = state.meter
            raise BudgetExceeded(
                "seconds", meter.scope, seconds or 0.0, meter.spent, meter.seconds
            ) from e
        raise
    exits = stages.records(list(order))
    _trace_stages(state, exits)
    skipped = set(stages.skipped)
    node_outputs = tuple(
        (item.node.id, futures[item.node.id].result())
        for item in prepared.nodes
        if item.node.id not in skipped
    )
    stop = next((record.node for record in exits if record.exit), None)
    output = futures[stop or prepared.pipeline.output].result()
    answer = _answer(output, state.warnings)
    return RunResult(
        answer=answer,
        output=output,
        node_outputs=node_outputs,
        usage=state.meter.spent,
        seconds=time.perf_counter() - started,
        cache_hits=state.cache_hits,
        warnings=tuple(state.warnings),
        exits=exits,
    )


def _trace_stages(state: QueryState, exits: Sequence[ExitRecord]) -> None:
    """Write each gate's decision to the trace, when the sink records stages."""
    trace = state.env.trace
    if not isinstance(trace, StageSink):
        return
    for record in exits:
        trace.record_stage(
            StageRecord(
                node_id=record.node,
                exit=record.exit,
                reason=record.reason,
                skipped=record.skipped,
                query_index=state.query_index,
            )
        )


def _state(
    prepared: Prepared,
    env: RunEnv,
    query: tuple[Message, ...],
    parent: Meter | None,
    index: int | None,
    stream_tap: StreamTap | None = None,
) -> QueryState:
    meter = Meter(prepared.pipeline.budget, scope="query", parent=parent)
    return QueryState(
        env=env,
        meter=meter,
        query=query,
        aliases=prepared.aliases,
        query_index=index,
        stream_tap=stream_tap,
    )


def _run_meter(budget: Meter | Budget | None) -> Meter | None:
    if budget is None or isinstance(budget, Meter):
        return budget
    return Meter(budget, scope="run")


async def run(
    pipeline: Pipeline,
    query: Query,
    env: RunEnv | None = None,
    *,
    budget: Meter | Budget | None = None,
    stream_tap: StreamTap | None = None,
    query_index: int | None = None,
    client: ModelClient | None = None,
    **fields: Any,
) -> RunResult:
    """Answer one query with a concrete pipeline.

    Args:
        pipeline: a pipeline without holes (assign them first).
        query: a user message, or a conversation ending with the user's turn.
        env: the :class:`~archon.runtime.env.RunEnv`: client, limits, registry, cache, trace,
            redactor and seed (:meth:`RunEnv.open <archon.runtime.env.RunEnv.open>` builds
            the one the CLI uses).
        budget: an extra run-level budget or meter on top of ``pipeline.budget``.
        stream_tap: pass the text of one node's call on while it is generated (see
            :mod:`archon.runtime.streaming`).
        query_index: recorded in the call traces (e.g. the choice of a served request).
        client, **fields: shorthand for ``env=RunEnv(client=client, **fields)`` when no
            ``env`` is given (``limits``, ``registry``, ``cache``, ``trace``, ``redactor``,
            ``seed``).

    Raises:
        PipelineNotConcrete, InvalidNode: the pipeline cannot run as given.
        NodeFailed: a node failed (the others were cancelled).
        BudgetExceeded: a budget limit was reached.

    Example:
        >>> from archon.runtime.clients.fake import ScriptedClient
        >>> result = run_sync(pipeline, "2+2?", RunEnv(client=ScriptedClient()))  # doctest: +SKIP
    """
    env = resolve_env(env, client, fields, "run")
    prepared = prepare(pipeline, env.registry)
    messages = as_conversation(query)
    state = _state(prepared, env, messages, _run_meter(budget), query_index, stream_tap)
    return await execute(prepared, state)


def run_sync(
    pipeline: Pipeline, query: Query, env: RunEnv | None = None, **options: Any
) -> RunResult:
    """``asyncio.run(run(...))`` for scripts and the CLI."""
    return asyncio.run(run(pipeline, query, env, **options))


async def run_many(
    pipeline: Pipeline,
    queries: Iterable[Query],
    env: RunEnv | None = None,
    *,
    budget: Meter | Budget | None = None,
    max_in_flight: int | None = None,
    client: ModelClient | None = None,
    **fields: Any,
) -> AsyncIterator[ItemResult]:
    """Answer many queries concurrently, yielding each :class:`ItemResult` as it completes.

    ``env``, ``budget`` and the keyword shorthand are :func:`run`'s. All queries share one
    :class:`Limits` (so provider pressure is bounded once) and one run-level meter built from
    ``budget``; each query also
    has its own ``pipeline.budget``.
    A failing query (a node error, a budget limit) is yielded as an item with ``error`` set;
    it never stops the others. At most ``max_in_flight`` queries (default: the limits'
    ``max_concurrency``) are started at once.
    """
    env = resolve_env(env, client, fields, "run_many")
    prepared = prepare(pipeline, env.registry)
    run_meter = _run_meter(budget)
    window = max(1, max_in_flight or env.limits.max_concurrency)

    async def one(index: int, query: Query) -> ItemResult:
        messages: tuple[Message, ...] = ()
        try:
            messages = as_conversation(query)
            state = _state(prepared, env, messages, run_meter, index)
            return ItemResult(index, messages, result=await execute(prepared, state))
        except ArchonError as error:
            return ItemResult(index, messages, error=error)

    jobs = (partial(one, index, query) for index, query in enumerate(queries))
    async with aclosing(in_flight(jobs, window)) as results:
        async for result in results:
            yield result


async def run_conversation(
    pipeline: Pipeline,
    turns: Sequence[str],
    env: RunEnv | None = None,
    *,
    system: str | None = None,
    **options: Any,
) -> tuple[RunResult, ...]:
    """Answer a multi-turn conversation (MT-Bench style), one user turn at a time.

    Turn ``k`` is answered with the conversation so far: earlier user turns and the
    pipeline's own earlier answers as assistant messages. ``env`` and ``options`` are
    :func:`run`'s.
    """
    history: list[Message] = [Message(role="system", content=system)] if system else []
    results: list[RunResult] = []
    for turn in turns:
        history.append(Message(role="user", content=turn))
        result = await run(pipeline, tuple(history), env, **options)
        results.append(result)
        history.append(Message(role="assistant", content=result.answer))
    return tuple(results)
