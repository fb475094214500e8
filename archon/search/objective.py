"""What a trial measures: chunked evaluation of one concrete pipeline on a list of items.

Search needs an evaluation that reports as it goes, so that a poor configuration can be
pruned after a few chunks of the dev split. :class:`Evaluator` is that contract: given a
concrete pipeline and items, yield one :class:`Progress` per chunk with the running score and
what was spent so far. Implementations:

* :class:`EvalEvaluator` (the default) runs :func:`archon.eval.evaluate.evaluate_chunks` with the
  dataset's metric; one shared :class:`~archon.runtime.Limits`, :class:`~archon.runtime.CallCache`
  and run-level :class:`~archon.runtime.Meter` serve every trial;
* :class:`RuntimeEvaluator` runs the pipeline with :func:`archon.runtime.run_many` and scores
  answers with any ``score(item, answer)`` function;
* :class:`archon.search.simulator.SimulatedEvaluator` scores instantly from a known function
  of the architecture (tests and benchmarks).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from archon.eval.config import EvalConfig
from archon.eval.items import Dataset, EvalItem
from archon.eval.records import ModelUsage
from archon.eval.summary import PerQuery, PerQueryTally
from archon.ir import Pipeline
from archon.layers.registry import Registry
from archon.runtime import (
    BudgetExceeded,
    CallCache,
    CallRecord,
    ItemResult,
    Limits,
    Meter,
    ModelClient,
    run_many,
)
from archon.values import Message

if TYPE_CHECKING:
    from archon.eval.evaluate import ChunkReport

logger = logging.getLogger(__name__)

Item = TypeVar("Item", contravariant=True)
T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """Where the evaluation of one pipeline stands after a chunk.

    Attributes:
        items_done: items evaluated so far (failed items included).
        score: mean metric over ``items_done`` (a failed item scores 0).
        calls: model calls made (cache hits excluded: they are free).
        cache_hits: single-sample calls answered from the cache.
        tokens: tokens spent by those calls.
        usd: dollars spent.
        usd_equivalent: dollars the calls would have cost without the cache.
        failed: items that raised (node failure or per-query budget).
        stopped: the limit (``calls``, ``usd``, ``seconds``, ``tokens``) of the run-level
            (search) budget that ran out, making the evaluation incomplete; else None.
        by_model: calls and tokens per model (when the evaluator knows them).
        scores: ``(item id, score)`` of every item scored so far, for paired comparisons
            (when the evaluator reports them).
        per_query: mean, median and maximum calls and tokens per query, and the items an
            early exit stopped (when the evaluator knows them).
    """

    items_done: int
    score: float
    calls: int = 0
    cache_hits: int = 0
    tokens: int = 0
    usd: float = 0.0
    usd_equivalent: float = 0.0
    failed: int = 0
    stopped: str | None = None
    by_model: tuple[ModelUsage, ...] = ()
    scores: tuple[tuple[str, float], ...] = ()
    per_query: PerQuery | None = None

    @property
    def calls_equivalent(self) -> int:
        """Calls the evaluation needed, whether answered by a model or by the cache."""
        return self.calls + self.cache_hits


class Evaluator(Protocol[Item]):
    """Scores a concrete pipeline on items, chunk by chunk.

    Contract: yield one :class:`Progress` after each ``chunk_size`` items (the last chunk may
    be shorter), with cumulative figures; spend only through ``budget`` (the search's shared
    meter) when it is given; when ``budget`` runs out, yield a last ``Progress`` with
    ``stopped`` set and stop. Never raise for a failing item: count it in ``failed``.
    """

    def evaluate_chunks(
        self,
        pipeline: Pipeline,
        items: Sequence[Item],
        *,
        chunk_size: int,
        budget: Meter | None,
    ) -> AsyncGenerator[Progress, None]:
        """Evaluate ``pipeline`` on ``items``, yielding progress after every chunk."""
        ...


Query = str | Sequence[Message]


@dataclass
class _Tally:
    """Per-evaluation trace sink: counts calls and what cache hits would have cost."""

    include_prompts: bool = False
    usd_equivalent: float = 0.0
    records: int = 0
    forward: list[Callable[[CallRecord], None]] = field(default_factory=list)

    def record(self, record: CallRecord) -> None:
        self.records += 1
        self.usd_equivalent += record.usd
        for sink in self.forward:
            sink(record)


class RuntimeEvaluator(Generic[T]):
    """Runs pipelines with the archon runtime and scores answers.

    Args:
        client: where model calls go (shared by every trial).
        score: ``score(item, answer) -> float`` in [0, 1] (sync or async).
        query: ``query(item)`` -> what the pipeline is asked.
        limits: concurrency, timeouts, retries: one instance shared by every trial.
        cache: the persistent call cache shared by every trial (None: no caching).
        registry: layer kinds.
        seed: run seed (the same for every trial, so equal calls hit the cache).
        max_in_flight: queries of one trial run at once (default: the limits' concurrency).
    """

    def __init__(
        self,
        client: ModelClient,
        score: Callable[[T, str], float | Awaitable[float]],
        query: Callable[[T], Query],
        *,
        limits: Limits | None = None,
        cache: CallCache | None = None,
        registry: Registry | None = None,
        seed: int = 0,
        max_in_flight: int | None = None,
    ) -> None:
        self.client = client
        self.score = score
        self.query = query
        self.limits = limits or Limits()
        self.cache = cache
        self.registry = registry
        self.seed = seed
        self.max_in_flight = max_in_flight

    async def evaluate_chunks(
        self,
        pipeline: Pipeline,
        items: Sequence[T],
        *,
        chunk_size: int,
        budget: Meter | None,
    ) -> AsyncGenerator[Progress, None]:
        """See :class:`Evaluator`."""
        chunk_size = max(1, chunk_size)
        tally = _Tally()
        state = _Totals()
        for start in range(0, len(items), chunk_size):
            chunk = items[start : start + chunk_size]
            async for result in run_many(
                pipeline,
                [self.query(item) for item in chunk],
                client=self.client,
                limits=self.limits,
                registry=self.registry,
                cache=self.cache,
                trace=tally,
                budget=budget,
                seed=self.seed,
                max_in_flight=self.max_in_flight,
            ):
                await state.add(result, chunk[result.index], start + result.index, self.score)
            progress = state.progress(tally)
            yield progress
            if progress.stopped is not None:
                return


@dataclass
class _Totals:
    done: int = 0
    total: float = 0.0
    calls: int = 0
    cache_hits: int = 0
    tokens: int = 0
    usd: float = 0.0
    failed: int = 0
    stopped: str | None = None
    scores: list[tuple[str, float]] = field(default_factory=list)
    per_query: PerQueryTally = field(default_factory=PerQueryTally)

    async def add(
        self,
        result: ItemResult,
        item: T,
        position: int,
        score: Callable[[T, str], float | Awaitable[float]],
    ) -> None:
        error = result.error
        if isinstance(error, BudgetExceeded) and error.scope == "run":
            # The search budget ran out: this item was not evaluated, the trial is incomplete.
            self.stopped = self.stopped or error.limit
            return
        self.done += 1
        key = str(getattr(item, "id", position))
        if result.result is None:
            self.failed += 1
            self.scores.append((key, 0.0))
            logger.debug("item %d failed: %s", result.index, error)
            return
        run = result.result
        self.calls += run.usage.calls
        self.tokens += run.usage.tokens
        self.usd += run.usage.usd
        self.cache_hits += run.cache_hits
        self.per_query.add(
            run.usage.calls + run.cache_hits, run.usage.tokens, run.exited_at is not None
        )
        value = score(item, run.answer)
        if not isinstance(value, float | int):
            value = await value
        self.total += float(value)
        self.scores.append((key, float(value)))

    def progress(self, tally: _Tally) -> Progress:
        return Progress(
            items_done=self.done,
            score=self.total / self.done if self.done else 0.0,
            calls=self.calls,
            cache_hits=self.cache_hits,
            tokens=self.tokens,
            usd=self.usd,
            usd_equivalent=tally.usd_equivalent,
            failed=self.failed,
            stopped=self.stopped,
            scores=tuple(self.scores),
            per_query=self.per_query.per_query(),
        )


class EvalEvaluator:
    """Scores with :func:`archon.eval.evaluate.evaluate_chunks` and the dataset's metric.

    Args:
        dataset: the dataset the items come from (its name and default metric).
        config: how every trial is evaluated: the client, limits, cache, metric, seed,
            concurrency (items of one trial in flight at once) ... The search's shared meter
            replaces ``config.budget`` for each evaluation; a ``config.trace`` still receives
            every call.

    Judge calls made by a metric are not charged to the search budget (evaluation keeps
    them apart from the pipeline's own cost).
    """

    def __init__(self, dataset: Dataset, config: EvalConfig) -> None:
        self.dataset = dataset
        self.config = config if config.limits is not None else config.replace(limits=Limits())

    @property
    def cache(self) -> CallCache | None:
        """The call cache every trial shares (its ``bank_hits`` count the bank's answers)."""
        return self.config.cache

    @property
    def metric_name(self) -> str:
        """The name of the metric trials are scored with (``code``, ``exact_match`` ...)."""
        metric = self.config.metric
        if metric is None:
            return self.dataset.metric
        return metric if isinstance(metric, str) else metric.name

    async def evaluate_chunks(
        self,
        pipeline: Pipeline,
        items: Sequence[EvalItem],
        *,
        chunk_size: int,
        budget: Meter | None,
    ) -> AsyncGenerator[Progress, None]:
        """See :class:`Evaluator`."""
        from archon.eval.evaluate import evaluate_chunks

        forward = self.config.trace
        tally = _Tally(forward=[forward.record] if forward is not None else [])
        config = self.config.replace(budget=budget, trace=tally)
        chunks = evaluate_chunks(
            pipeline, self.dataset.with_items(items), config, chunk_size=max(1, chunk_size)
        )
        scores: list[tuple[str, float]] = []
        # closed at once when a trial is pruned: the items in flight stop
        async with contextlib.aclosing(chunks):
            async for report in chunks:
                scores += ((r.id, r.score) for r in report.records if r.valid)
                yield _progress(report, tally, tuple(scores))


def _progress(
    report: ChunkReport, tally: _Tally, scores: tuple[tuple[str, float], ...]
) -> Progress:
    summary = report.summary
    cost = summary.cost
    return Progress(
        items_done=report.step,
        score=summary.score or 0.0,
        calls=cost.calls,
        cache_hits=cost.cache_hits,
        tokens=cost.prompt_tokens + cost.completion_tokens,
        usd=cost.usd,
        usd_equivalent=tally.usd_equivalent,
        failed=summary.errors,
        stopped=None if report.stopped is None else report.stopped.limit,
        by_model=cost.by_model,
        scores=scores,
        per_query=cost.per_query,
    )
