"""Run a pipeline over a dataset and score it: ``evaluate``, ``evaluate_iter``,
``evaluate_chunks`` and the CLI's ``evaluate_sync``.

Many items are in flight at once (``concurrency``), all sharing one
:class:`~archon.runtime.Limits` (so model pressure is bounded in one place, exactly as in
:func:`~archon.runtime.run_many`) and one run-level budget meter. Each item is answered with
:func:`~archon.runtime.run` -- or :func:`~archon.runtime.run_conversation` for multi-turn
items -- then scored, with its candidates, by the metric; its record is appended to the records
file the moment it is done.

Failures are data, not crashes: a node error or a per-query budget limit makes a failed item
(score 0). When the *run* budget is exhausted no new item starts, items in flight finish, and
the result says how far it got (``stopped``); the unfinished items have no record, so
``resume=True`` with a larger budget completes them later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from archon.errors import ArchonError
from archon.eval.items import Dataset, EvalItem
from archon.eval.metrics import (
    Metric,
    MetricContext,
    MetricOptions,
    MetricRegistry,
    Score,
    default_metrics,
    sandbox_runner,
)
from archon.eval.metrics.base import CodeRunner
from archon.eval.records import (
    CandidateRecord,
    ItemRecord,
    RecordWriter,
    check_resumable,
)
from archon.eval.summary import FILTER_KINDS, PASS_K, Summary, Tally
from archon.ir import Budget, Pipeline
from archon.layers.registry import Registry
from archon.runtime import (
    BudgetExceeded,
    CallCache,
    Limits,
    Meter,
    ModelClient,
    RunResult,
    TraceSink,
    prepare,
    run,
    run_conversation,
)
from archon.values import Candidates, Usage


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Update(_Frozen):
    """One step of :func:`evaluate_iter`: a finished item (or the stop notice) and the running
    aggregates over every item done so far (resumed ones included)."""

    record: ItemRecord | None
    summary: Summary
    done: int
    total: int
    stopped: str | None = None


class ChunkReport(_Frozen):
    """The running aggregates after a chunk of :func:`evaluate_chunks` (``step`` items done)."""

    chunk: int
    step: int
    total: int
    summary: Summary
    final: bool = False
    stopped: str | None = None


class EvalResult(_Frozen):
    """The outcome of :func:`evaluate`.

    Attributes:
        dataset, metric: what was evaluated and how it was scored.
        pipeline, fingerprint: the pipeline's name and fingerprint.
        total: items asked for; ``summary.n`` of them are done (``resumed`` read from the
            records file).
        stopped: why the run stopped early (run budget), or None.
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
    stopped: str | None = None

    @property
    def complete(self) -> bool:
        """Every item has a record."""
        return self.stopped is None and self.summary.n == self.total

    def report(self) -> dict[str, Any]:
        """The result without per-item records, as JSON-ready data (``archon eval --out``)."""
        s = self.summary
        cost = s.cost
        return {
            "dataset": self.dataset,
            "metric": self.metric,
            "pipeline": self.pipeline,
            "fingerprint": self.fingerprint,
            "total": self.total,
            "done": s.n,
            "resumed": self.resumed,
            "stopped": self.stopped,
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
                **cost.model_dump(exclude={"judge"}),
                "judge": cost.judge.model_dump(),
                "per_item": {
                    "calls": cost.calls_per_item,
                    "tokens_in": cost.tokens_in_per_item,
                    "tokens_out": cost.tokens_out_per_item,
                    "usd": cost.usd_per_item,
                    "seconds": cost.seconds_per_item,
                },
            },
        }


@dataclass(frozen=True)
class _Setup:
    pipeline: Pipeline
    metric: Metric
    metric_name: str
    mctx: MetricContext
    options: dict[str, Any]
    score_candidates: bool
    fingerprint: str


@dataclass(frozen=True)
class _Stop:
    reason: str


def _metric(
    dataset: Dataset,
    metric: str | Metric | None,
    metrics: MetricRegistry | None,
    options: MetricOptions | None,
) -> Metric:
    if metric is not None and not isinstance(metric, str):
        return metric
    return (metrics or default_metrics()).build(metric or dataset.metric, options)


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


async def _answer(setup: _Setup, item: EvalItem) -> tuple[RunResult, ...]:
    if len(item.turns) == 1:
        return (await run(setup.pipeline, item.query, **setup.options),)
    return await run_conversation(setup.pipeline, item.turns, system=item.system, **setup.options)


async def _one(setup: _Setup, item: EvalItem) -> ItemRecord | _Stop:
    started = time.perf_counter()
    try:
        results = await _answer(setup, item)
    except BudgetExceeded as error:
        if error.scope == "run":
            return _Stop(str(error))
        return _failed(setup, item, error, seconds=time.perf_counter() - started)
    except ArchonError as error:
        return _failed(setup, item, error, seconds=time.perf_counter() - started)
    answers = tuple(r.answer for r in results)
    spent = {
        "answers": answers,
        "usage": sum((r.usage for r in results), Usage()),
        "seconds": sum(r.seconds for r in results),
        "cache_hits": sum(r.cache_hits for r in results),
    }
    cands = _candidates(setup.pipeline, results[-1])
    try:
        score = await setup.metric.score(item, answers, setup.mctx)
        judge = score.usage
        if setup.score_candidates:
            cands, extra = await _score_candidates(setup, item, answers, score, cands)
            judge = judge + extra
    except ArchonError as error:
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
    todo: list[EvalItem]
    total: int
    concurrency: int

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _open(
    pipeline: Pipeline,
    dataset: Dataset,
    *,
    client: ModelClient,
    limits: Limits | None = None,
    cache: CallCache | None = None,
    metric: str | Metric | None = None,
    concurrency: int = 8,
    budget: Meter | Budget | None = None,
    records_path: str | Path | None = None,
    resume: bool = False,
    registry: Registry | None = None,
    metrics: MetricRegistry | None = None,
    metric_options: MetricOptions | None = None,
    judge_client: ModelClient | None = None,
    runner: CodeRunner = sandbox_runner,
    score_candidates: bool | None = None,
    pass_k: Sequence[int] = PASS_K,
    filter_kinds: Sequence[str] = FILTER_KINDS,
    trace: TraceSink | None = None,
    seed: int = 0,
) -> _Run:
    if registry is None:
        from archon.layers import default_registry

        registry = default_registry()
    prepare(pipeline, registry)  # fail before any work if the pipeline cannot run
    chosen = _metric(dataset, metric, metrics, metric_options)
    limits = limits or Limits()
    meter = Meter(budget, scope="run") if isinstance(budget, Budget) else budget
    setup = _Setup(
        pipeline=pipeline,
        metric=chosen,
        metric_name=chosen.name,
        mctx=MetricContext(
            client=judge_client or client, limits=limits, runner=runner, cache=cache, seed=seed
        ),
        options={
            "client": client,
            "limits": limits,
            "registry": registry,
            "cache": cache,
            "trace": trace,
            "budget": meter,
            "seed": seed,
        },
        score_candidates=not chosen.needs_model if score_candidates is None else score_candidates,
        fingerprint=pipeline.fingerprint(),
    )
    tally = Tally(pass_k, filter_kinds)
    resumed: list[ItemRecord] = []
    writer = RecordWriter(records_path, resume=resume) if records_path is not None else None
    if writer is not None:
        try:
            check_resumable(writer.existing, setup.fingerprint, setup.metric_name, writer.path)
        except BaseException:
            writer.close()
            raise
        wanted = {item.id for item in dataset.items}
        seen: set[str] = set()
        for record in writer.existing:
            if record.id in wanted and record.id not in seen:
                seen.add(record.id)
                resumed.append(record)
                tally.add(record)
    done = {r.id for r in resumed}
    todo = [item for item in dataset.items if item.id not in done]
    return _Run(setup, tally, writer, resumed, todo, len(dataset), concurrency)


async def evaluate_iter(
    pipeline: Pipeline,
    dataset: Dataset,
    *,
    client: ModelClient,
    limits: Limits | None = None,
    cache: CallCache | None = None,
    metric: str | Metric | None = None,
    concurrency: int = 8,
    budget: Meter | Budget | None = None,
    records_path: str | Path | None = None,
    resume: bool = False,
    registry: Registry | None = None,
    metrics: MetricRegistry | None = None,
    metric_options: MetricOptions | None = None,
    judge_client: ModelClient | None = None,
    runner: CodeRunner = sandbox_runner,
    score_candidates: bool | None = None,
    pass_k: Sequence[int] = PASS_K,
    filter_kinds: Sequence[str] = FILTER_KINDS,
    trace: TraceSink | None = None,
    seed: int = 0,
) -> AsyncIterator[Update]:
    """Evaluate ``pipeline`` on ``dataset``, yielding an :class:`Update` per finished item.

    Arguments are those of :func:`evaluate`, plus: ``registry`` (layer kinds), ``metrics`` and
    ``metric_options`` (how a metric name is built), ``judge_client`` (judge calls; default
    ``client``), ``runner`` (code execution; default the sandbox), ``score_candidates``
    (score every candidate for pass@k/coverage; default: when the metric calls no model),
    ``pass_k``, ``filter_kinds``, ``trace`` and ``seed``.

    Resumed items are counted in the first update's summary but not yielded. The last update
    has ``stopped`` set when the run budget ran out. Breaking out of the loop cancels the
    items in flight (they get no record, so a resume redoes them).
    """
    state = _open(
        pipeline,
        dataset,
        client=client,
        limits=limits,
        cache=cache,
        metric=metric,
        concurrency=concurrency,
        budget=budget,
        records_path=records_path,
        resume=resume,
        registry=registry,
        metrics=metrics,
        metric_options=metric_options,
        judge_client=judge_client,
        runner=runner,
        score_candidates=score_candidates,
        pass_k=pass_k,
        filter_kinds=filter_kinds,
        trace=trace,
        seed=seed,
    )
    try:
        async for update in _drive(state):
            yield update
    finally:
        state.close()


async def _drive(state: _Run) -> AsyncIterator[Update]:
    setup, tally, writer, total = state.setup, state.tally, state.writer, state.total
    pending: set[asyncio.Task[ItemRecord | _Stop]] = set()
    upcoming = iter(state.todo)
    stopped: str | None = None
    try:
        while True:
            while stopped is None and len(pending) < max(1, state.concurrency):
                item = next(upcoming, None)
                if item is None:
                    break
                pending.add(asyncio.create_task(_one(setup, item), name=f"eval:{item.id}"))
            if not pending:
                break
            finished, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                pending.discard(task)
                outcome = task.result()
                if isinstance(outcome, _Stop):
                    stopped = stopped or outcome.reason
                    continue
                if writer is not None:
                    writer.write(outcome)
                tally.add(outcome)
                yield Update(record=outcome, summary=tally.summary(), done=tally.n, total=total)
        if stopped is not None:
            yield Update(
                record=None, summary=tally.summary(), done=tally.n, total=total, stopped=stopped
            )
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


async def evaluate(
    pipeline: Pipeline,
    dataset: Dataset,
    *,
    client: ModelClient,
    limits: Limits | None = None,
    cache: CallCache | None = None,
    metric: str | Metric | None = None,
    concurrency: int = 8,
    budget: Meter | Budget | None = None,
    records_path: str | Path | None = None,
    resume: bool = False,
    progress: Callable[[Update], None] | None = None,
    **options: Any,
) -> EvalResult:
    """Answer every item of ``dataset`` with ``pipeline`` and score the answers.

    Args:
        pipeline: a concrete pipeline (assign holes first).
        dataset: the items (apply splits and limits before).
        client: where the pipeline's model calls go; also the judge's unless
            ``judge_client`` is given.
        limits: shared concurrency/timeout/retry limits (one instance for everything).
        cache: the persistent call cache (pipeline and judge calls).
        metric: a metric name or instance (default: the dataset's metric).
        concurrency: items in flight at once.
        budget: a run-level budget (or meter) over all items; exhausting it stops cleanly.
        records_path: JSONL file receiving one record per item as it finishes.
        resume: keep the records already in ``records_path`` and skip their items.
        progress: called with every :class:`Update`.
        **options: ``registry``, ``metrics``, ``metric_options``, ``judge_client``,
            ``runner``, ``score_candidates``, ``pass_k``, ``filter_kinds``, ``trace``,
            ``seed`` (see :func:`evaluate_iter`).

    Returns:
        The frozen :class:`EvalResult`.

    Example:
        >>> result = await evaluate(pipeline, load_dataset("bigbench/arithmetic").head(5),
        ...                         client=client)  # doctest: +SKIP
        >>> result.summary.accuracy  # doctest: +SKIP
    """
    state = _open(
        pipeline,
        dataset,
        client=client,
        limits=limits,
        cache=cache,
        metric=metric,
        concurrency=concurrency,
        budget=budget,
        records_path=records_path,
        resume=resume,
        **options,
    )
    records = list(state.resumed)
    stopped: str | None = None
    try:
        async for update in _drive(state):
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
    pipeline: Pipeline,
    dataset: Dataset,
    *,
    chunk_size: int,
    **options: Any,
) -> AsyncIterator[ChunkReport]:
    """Evaluate like :func:`evaluate_iter`, reporting the running aggregates after every
    ``chunk_size`` finished items (and once at the end), for pruning searches::

        async for report in evaluate_chunks(p, dev, client=c, chunk_size=20):
            trial.report(report.summary.score or 0.0, step=report.step)
            if trial.should_prune():
                break            # cancels the items in flight

    Items keep flowing across chunk boundaries (the pipeline stays full); ``step`` is the
    number of items done, resumed ones included.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    state = _open(pipeline, dataset, **options)
    held: ChunkReport | None = None  # a boundary report waits to learn whether it is the last
    stopped: str | None = None
    chunk = 0
    try:
        async for update in _drive(state):
            stopped = update.stopped or stopped
            if update.record is None or update.done % chunk_size:
                continue
            if held is not None:
                yield held
            chunk += 1
            held = ChunkReport(
                chunk=chunk, step=update.done, total=update.total, summary=update.summary
            )
    finally:
        state.close()
    summary = state.tally.summary()
    if held is not None and held.step != summary.n:
        yield held
        held = None
    if held is None:
        chunk += 1
    yield ChunkReport(
        chunk=chunk,
        step=summary.n,
        total=state.total,
        summary=summary,
        final=True,
        stopped=stopped,
    )


def evaluate_sync(pipeline: Pipeline, dataset: Dataset, **options: Any) -> EvalResult:
    """``asyncio.run(evaluate(...))`` for the CLI and scripts."""
    return asyncio.run(evaluate(pipeline, dataset, **options))
