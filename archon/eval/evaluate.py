"""Run a pipeline over a dataset and score it: :func:`evaluate` (what ``archon eval`` awaits,
in its own event loop, with a progress bar), :func:`evaluate_iter` (an update per
finished item), :func:`evaluate_chunks` (a report per chunk: search's one evaluation path) and
:func:`evaluate_sync` (``asyncio.run(evaluate(...))`` for scripts and notebooks).

Many items are in flight at once (``concurrency``), all sharing the config's
:class:`~archon.runtime.RunEnv` -- so one :class:`~archon.runtime.Limits` bounds model
pressure in one place, exactly as in :func:`~archon.runtime.run_many` -- and one run-level
budget meter. Each item is answered with
:func:`~archon.runtime.run_conversation` (one :func:`~archon.runtime.run` per user turn), then
scored, with its candidates, by the metric; its record is appended to the records file the
moment it is done, with its calls and tokens per model.

Failures are data, not crashes: a node error or a per-query budget limit makes a failed item
(score 0). When the *run* budget is exhausted no new item starts, items in flight finish, and
the result says how far it got (``stopped``); the unfinished items have no record, so
``resume=True`` with a larger budget completes them later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial
from typing import Any

from pydantic import BaseModel, ConfigDict

from archon.errors import ArchonError
from archon.eval.config import EvalConfig
from archon.eval.items import Dataset, EvalItem
from archon.eval.metrics import Metric, MetricContext, Score, default_metrics
from archon.eval.records import (
    CandidateRecord,
    ItemRecord,
    ModelUsage,
    RecordWriter,
    check_resumable,
    merge_usage,
)
from archon.eval.summary import Summary, Tally, declared_filters
from archon.ir import Budget, Pipeline
from archon.runtime import (
    BudgetExceeded,
    CallRecord,
    Meter,
    RunEnv,
    RunResult,
    prepare,
    run_conversation,
)
from archon.runtime.concurrency import in_flight
from archon.runtime.events import fan_out
from archon.sandbox.confine import SandboxUnavailable
from archon.values import Candidates, Usage


class _Frozen(BaseModel):
    # ``stopped`` fields hold the BudgetExceeded itself: a typed fact, not its text.
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class Update(_Frozen):
    """One step of :func:`evaluate_iter`: a finished item (or the stop notice) and the running
    aggregates over every item done so far (resumed ones included)."""

    record: ItemRecord | None
    summary: Summary
    done: int
    total: int
    stopped: BudgetExceeded | None = None


class ChunkReport(_Frozen):
    """The running aggregates after a chunk of :func:`evaluate_chunks` (``step`` items done),
    and the records of the items finished since the previous report (resumed ones first)."""

    chunk: int
    step: int
    total: int
    summary: Summary
    records: tuple[ItemRecord, ...] = ()
    final: bool = False
    stopped: BudgetExceeded | None = None


class EvalResult(_Frozen):
    """The outcome of :func:`evaluate`.

    Attributes:
        dataset, metric: what was evaluated and how it was scored.
        pipeline, fingerprint: the pipeline's name and fingerprint.
        total: items asked for; ``summary.n`` of them are done (``resumed`` read from the
            records file).
        stopped: the run-budget limit that stopped the run early (its ``limit`` says which),
            or None.
        records: every item's record, resumed ones first, then in completion order.
    """

    dataset: str
    metric: str
    pipeline: str
    fingerprint: str
    total: int
    summary: Summary
    records: tuple[ItemRecord, ...]
    resumed: int = 0
    stopped: BudgetExceeded | None = None

    @property
    def complete(self) -> bool:
        """Every item has a record."""
        return self.stopped is None and self.summary.n == self.total

    def report(self) -> dict[str, Any]:
        """The result without per-item records, as JSON-ready data (``archon eval --out``)."""
        s = self.summary
        cost = s.cost
        n = max(1, s.n)
        return {
            "dataset": self.dataset,
            "metric": self.metric,
            "pipeline": self.pipeline,
            "fingerprint": self.fingerprint,
            "total": self.total,
            "done": s.n,
            "resumed": self.resumed,
            "stopped": None if self.stopped is None else str(self.stopped),
            "stopped_limit": None if self.stopped is None else self.stopped.limit,
            "errors": s.errors,
            "invalid": s.invalid,
            "score": s.score,
            "accuracy": s.accuracy,
            "pass_at_k": {str(k): v for k, v in s.pass_at},
            "coverage": s.coverage,
            "candidates_per_item": s.candidates_per_item,
            "verifier_fpr": s.verifier_fpr,
            "verifier_kept": s.verifier_kept,
            "cost": {
                **cost.model_dump(exclude={"judge", "by_model"}),
                "judge": cost.judge.model_dump(),
                "per_item": {
                    "calls": cost.calls_per_item,
                    "tokens_in": cost.tokens_in_per_item,
                    "tokens_out": cost.tokens_out_per_item,
                    "usd": cost.usd_per_item,
                    "seconds": cost.seconds_per_item,
                },
                "by_model": {
                    m.model: {**m.model_dump(exclude={"model"}), "calls_per_item": m.calls / n}
                    for m in cost.by_model
                },
            },
        }


@dataclass(frozen=True)
class _Setup:
    pipeline: Pipeline
    metric: Metric
    metric_name: str
    mctx: MetricContext
    env: RunEnv
    budget: Meter | None
    score_candidates: bool
    fingerprint: str


class _ItemTrace:
    """Counts one item's calls per model (the user's sink gets them through a fan-out)."""

    def __init__(self) -> None:
        self._usage: dict[str, ModelUsage] = {}

    @property
    def include_prompts(self) -> bool:
        return False

    def record(self, record: CallRecord) -> None:
        hit = record.cache_hit
        spent = ModelUsage(
            model=record.model,
            calls=0 if hit else 1,
            cache_hits=1 if hit else 0,
            prompt_tokens=0 if hit else record.tokens_in,
            completion_tokens=0 if hit else record.tokens_out,
            usd=0.0 if hit else record.usd,
            cached_tokens=record.tokens_in + record.tokens_out if hit else 0,
        )
        earlier = self._usage.get(record.model)
        self._usage[record.model] = spent if earlier is None else earlier + spent

    def by_model(self) -> tuple[ModelUsage, ...]:
        return merge_usage((), self._usage.values())


def _metric(dataset: Dataset, config: EvalConfig) -> Metric:
    metric = config.metric
    if metric is not None and not isinstance(metric, str):
        return metric
    return (config.metrics or default_metrics()).build(
        metric or dataset.metric, config.metric_options
    )


def _candidates(pipeline: Pipeline, result: RunResult) -> list[CandidateRecord]:
    out: list[CandidateRecord] = []
    for node_id, payload in result.node_outputs:
        if not isinstance(payload, Candidates):
            continue
        node = pipeline.node(node_id)
        out.extend(
            CandidateRecord(
                node=node_id, kind=node.kind, index=i, source=not node.inputs, text=c.text
            )
            for i, c in enumerate(payload.items)
        )
    return out


async def _score_candidates(
    setup: _Setup,
    item: EvalItem,
    answers: tuple[str, ...],
    final: Score,
    cands: list[CandidateRecord],
) -> tuple[list[CandidateRecord], Usage]:
    verdicts: dict[str, bool | None] = {answers[-1]: final.correct}
    usage = Usage()
    for cand in cands:
        if cand.text not in verdicts:
            score = await setup.metric.score(item, (*answers[:-1], cand.text), setup.mctx)
            verdicts[cand.text] = score.correct
            usage = usage + score.usage
    return [c.model_copy(update={"correct": verdicts[c.text]}) for c in cands], usage


def _failed(setup: _Setup, item: EvalItem, error: ArchonError, **fields: Any) -> ItemRecord:
    return ItemRecord(
        id=item.id,
        correct=False,
        error=str(error) or type(error).__name__,
        error_type=type(error).__name__,
        fingerprint=setup.fingerprint,
        metric=setup.metric_name,
        **fields,
    )


async def _answer(
    setup: _Setup, item: EvalItem, trace: _ItemTrace, index: int | None
) -> tuple[RunResult, ...]:
    """The pipeline's answer to each user turn (one turn: a plain :func:`run`); the user's
    trace sink, if any, gets every record and event too, with the item's position in the
    dataset as the query index."""
    return await run_conversation(
        setup.pipeline,
        item.turns,
        setup.env.replace(trace=fan_out(trace, setup.env.trace)),
        system=item.system,
        budget=setup.budget,
        query_index=index,
    )


def _stop_if_no_sandbox(error: ArchonError) -> None:
    """Raise the :class:`SandboxUnavailable` behind ``error`` (itself, or the cause of a
    failed node): without a sandbox no item can be scored, so the evaluation stops."""
    cause = getattr(error, "cause", None)
    for candidate in (error, cause):
        if isinstance(candidate, SandboxUnavailable):
            raise candidate from None


async def _one(
    setup: _Setup, item: EvalItem, index: int | None = None
) -> ItemRecord | BudgetExceeded:
    """The record of one item (``index``: its position in the dataset), or the run-budget
    limit that kept it from being answered."""
    started = time.perf_counter()
    trace = _ItemTrace()
    try:
        results = await _answer(setup, item, trace, index)
    except BudgetExceeded as error:
        if error.scope == "run":
            return error
        elapsed = time.perf_counter() - started
        return _failed(setup, item, error, seconds=elapsed, by_model=trace.by_model())
    except ArchonError as error:
        _stop_if_no_sandbox(error)
        elapsed = time.perf_counter() - started
        return _failed(setup, item, error, seconds=elapsed, by_model=trace.by_model())
    answers = tuple(r.answer for r in results)
    spent: dict[str, Any] = {
        "answers": answers,
        "usage": sum((r.usage for r in results), Usage()),
        "seconds": sum(r.seconds for r in results),
        "cache_hits": sum(r.cache_hits for r in results),
        "by_model": trace.by_model(),
        "exited_at": results[-1].exited_at,
        "skipped": results[-1].skipped,
    }
    cands = _candidates(setup.pipeline, results[-1])
    try:
        score = await setup.metric.score(item, answers, setup.mctx)
        judge = score.usage
        if setup.score_candidates:
            cands, extra = await _score_candidates(setup, item, answers, score, cands)
            judge = judge + extra
    except ArchonError as error:
        _stop_if_no_sandbox(error)
        return _failed(setup, item, error, candidates=tuple(cands), **spent)
    return ItemRecord(
        id=item.id,
        candidates=tuple(cands),
        score=score.value,
        correct=score.correct,
        valid=score.valid,
        detail=score.detail,
        judge_usage=judge,
        fingerprint=setup.fingerprint,
        metric=setup.metric_name,
        **spent,
    )


@dataclass
class _Run:
    setup: _Setup
    tally: Tally
    writer: RecordWriter | None
    resumed: list[ItemRecord]
    todo: list[tuple[int, EvalItem]]
    """The items left to answer, each with its position in the dataset."""
    total: int
    concurrency: int

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _setup(pipeline: Pipeline, dataset: Dataset, config: EvalConfig) -> _Setup:
    chosen = _metric(dataset, config)
    budget = config.budget
    meter = Meter(budget, scope="run") if isinstance(budget, Budget) else budget
    score_candidates = config.score_candidates
    env = config.env
    return _Setup(
        pipeline=pipeline,
        metric=chosen,
        metric_name=chosen.name,
        mctx=MetricContext.of(env, config.runner, client=config.judge_client),
        env=env,
        budget=meter,
        score_candidates=not chosen.needs_model if score_candidates is None else score_candidates,
        fingerprint=pipeline.fingerprint(),
    )


def _resumed(writer: RecordWriter, setup: _Setup, dataset: Dataset) -> list[ItemRecord]:
    """The records of ``writer``'s file that belong to this evaluation (first per item)."""
    try:
        check_resumable(writer.existing, setup.fingerprint, setup.metric_name, writer.path)
    except BaseException:
        writer.close()
        raise
    wanted = {item.id for item in dataset.items}
    seen: set[str] = set()
    resumed: list[ItemRecord] = []
    for record in writer.existing:
        if record.id in wanted and record.id not in seen:
            seen.add(record.id)
            resumed.append(record)
    return resumed


def _open(pipeline: Pipeline, dataset: Dataset, config: EvalConfig) -> _Run:
    registry = config.env.registry
    prepare(pipeline, registry)  # fail before any work if the pipeline cannot run
    setup = _setup(pipeline, dataset, config)
    kinds = config.filter_kinds
    tally = Tally(config.pass_k, declared_filters(registry) if kinds is None else kinds)
    path = config.records_path
    writer = RecordWriter(path, resume=config.resume) if path is not None else None
    resumed = _resumed(writer, setup, dataset) if writer is not None else []
    for record in resumed:
        tally.add(record)
    done = {r.id for r in resumed}
    todo = [(k, item) for k, item in enumerate(dataset.items) if item.id not in done]
    return _Run(setup, tally, writer, resumed, todo, len(dataset), config.concurrency)


async def evaluate_iter(
    pipeline: Pipeline, dataset: Dataset, config: EvalConfig
) -> AsyncGenerator[Update, None]:
    """Evaluate ``pipeline`` on ``dataset``, yielding an :class:`Update` per finished item.

    ``config`` is described in :class:`~archon.eval.config.EvalConfig`. Resumed items are
    counted in the first update's summary but not yielded. The last update has ``stopped``
    set when the run budget ran out. Breaking out of the loop cancels the items in flight
    (they get no record, so a resume redoes them).
    """
    state = _open(pipeline, dataset, config)
    try:
        async with aclosing(_drive(state)) as updates:
            async for update in updates:
                yield update
    finally:
        state.close()


async def _drive(state: _Run) -> AsyncGenerator[Update, None]:
    setup, tally, writer, total = state.setup, state.tally, state.writer, state.total
    stopped: BudgetExceeded | None = None

    def jobs() -> Iterator[Callable[[], Any]]:
        for index, item in state.todo:
            if stopped is not None:  # the run budget is spent: start no new item
                return
            yield partial(_one, setup, item, index)

    async with aclosing(in_flight(jobs(), state.concurrency)) as outcomes:
        async for outcome in outcomes:
            if isinstance(outcome, BudgetExceeded):
                stopped = stopped or outcome
                continue
            if writer is not None:
                writer.write(outcome)
            tally.add(outcome)
            yield Update(record=outcome, summary=tally.summary(), done=tally.n, total=total)
    if stopped is not None:
        yield Update(
            record=None, summary=tally.summary(), done=tally.n, total=total, stopped=stopped
        )


async def evaluate(
    pipeline: Pipeline,
    dataset: Dataset,
    config: EvalConfig,
    *,
    progress: Callable[[Update], None] | None = None,
) -> EvalResult:
    """Answer every item of ``dataset`` with ``pipeline`` and score the answers.

    Args:
        pipeline: a concrete pipeline (assign holes first).
        dataset: the items (apply splits and limits before).
        config: the run environment (client, limits, cache ...), metric, concurrency, run
            budget, records file ... (:class:`~archon.eval.config.EvalConfig`).
        progress: called with every :class:`Update`.

    Returns:
        The frozen :class:`EvalResult`.

    Example:
        >>> result = await evaluate(pipeline, load_dataset("bigbench/arithmetic").head(5),
        ...                         EvalConfig(env=RunEnv(client=client)))  # doctest: +SKIP
        >>> result.summary.accuracy  # doctest: +SKIP
    """
    state = _open(pipeline, dataset, config)
    records = list(state.resumed)
    stopped: BudgetExceeded | None = None
    try:
        async with aclosing(_drive(state)) as updates:
            async for update in updates:
                if update.record is not None:
                    records.append(update.record)
                stopped = update.stopped or stopped
                if progress is not None:
                    progress(update)
    finally:
        state.close()
    return EvalResult(
        dataset=dataset.name,
        metric=state.setup.metric_name,
        pipeline=pipeline.name,
        fingerprint=state.setup.fingerprint,
        total=len(dataset),
        summary=state.tally.summary(),
        records=tuple(records),
        resumed=len(state.resumed),
        stopped=stopped,
    )


async def evaluate_chunks(
    pipeline: Pipeline, dataset: Dataset, config: EvalConfig, *, chunk_size: int
) -> AsyncGenerator[ChunkReport, None]:
    """Evaluate like :func:`evaluate_iter`, reporting the running aggregates after every
    ``chunk_size`` finished items (and once at the end), for pruning searches::

        async for report in evaluate_chunks(p, dev, EvalConfig.of(client=c), chunk_size=20):
            trial.report(report.summary.score or 0.0, step=report.step)
            if trial.should_prune():
                break            # cancels the items in flight

    Items keep flowing across chunk boundaries (the pipeline stays full); ``step`` is the
    number of items done, resumed ones included.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    state = _open(pipeline, dataset, config)
    held: ChunkReport | None = None  # a boundary report waits to learn whether it is the last
    batch: list[ItemRecord] = list(state.resumed)
    stopped: BudgetExceeded | None = None
    chunk = 0
    try:
        async with aclosing(_drive(state)) as updates:
            async for update in updates:
                stopped = update.stopped or stopped
                if update.record is not None:
                    batch.append(update.record)
                if update.record is None or update.done % chunk_size:
                    continue
                if held is not None:
                    yield held
                chunk += 1
                held = ChunkReport(
                    chunk=chunk,
                    step=update.done,
                    total=update.total,
                    summary=update.summary,
                    records=tuple(batch),
                )
                batch = []
    finally:
        state.close()
    summary = state.tally.summary()
    if held is not None and held.step != summary.n:
        yield held
        held = None
    if held is None:
        chunk += 1
    earlier = held.records if held is not None else ()
    yield ChunkReport(
        chunk=chunk,
        step=summary.n,
        total=state.total,
        summary=summary,
        records=(*earlier, *batch),
        final=True,
        stopped=stopped,
    )


def evaluate_sync(
    pipeline: Pipeline,
    dataset: Dataset,
    config: EvalConfig | None = None,
    *,
    progress: Callable[[Update], None] | None = None,
    **fields: Any,
) -> EvalResult:
    """``asyncio.run(evaluate(...))`` for scripts (``archon eval`` awaits :func:`evaluate` in
    its own event loop, where it also closes the model client).

    For scripts, the :class:`~archon.eval.config.EvalConfig` fields and those of its
    :class:`~archon.runtime.RunEnv` may be given as keywords instead of ``config``
    (``evaluate_sync(p, d, client=c, concurrency=2)``), or on top of it as changes.
    """
    if config is None:
        config = EvalConfig.of(**fields)
    elif fields:
        config = config.replace(**fields)
    return asyncio.run(evaluate(pipeline, dataset, config, progress=progress))
