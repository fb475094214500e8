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
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, cast

from archon.eval.items import Dataset, EvalItem
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
                await state.add(result, chunk[result.index], self.score)
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

    async def add(
        self, result: ItemResult, item: T, score: Callable[[T, str], float | Awaitable[float]]
    ) -> None:
        error = result.error
        if isinstance(error, BudgetExceeded) and error.scope == "run":
            # The search budget ran out: this item was not evaluated, the trial is incomplete.
            self.stopped = self.stopped or error.limit
            return
        self.done += 1
        if result.result is None:
            self.failed += 1
            logger.debug("item %d failed: %s", result.index, error)
            return
        run = result.result
        self.calls += run.usage.calls
        self.tokens += run.usage.tokens
        self.usd += run.usage.usd
        self.cache_hits += run.cache_hits
        value = score(item, run.answer)
        if not isinstance(value, float | int):
            value = await value
        self.total += float(value)

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
        )


_LIMIT = re.compile(r"budget exceeded: (\w+) <=")


def _limit_of(stopped: str | None) -> str | None:
    """The budget limit named in an evaluation's stop message (``calls``, ``usd`` ...)."""
    if stopped is None:
        return None
    match = _LIMIT.search(stopped)
    return match.group(1) if match else "search"


class EvalEvaluator:
    """Scores with :func:`archon.eval.evaluate.evaluate_chunks` and the dataset's metric.

    Args:
        dataset: the dataset the items come from (its name and default metric).
        client: where model calls go (shared by every trial).
        metric: a metric name (default: the dataset's).
        limits / cache / registry / seed: shared by every trial.
        concurrency: items of one trial in flight at once.
        judge_client: client for judge metrics (default: ``client``).

    Judge calls made by a metric are not charged to the search budget (evaluation keeps
    them apart from the pipeline's own cost).
    """

    def __init__(
        self,
        dataset: Dataset,
        client: ModelClient,
        *,
        metric: str | None = None,
        limits: Limits | None = None,
        cache: CallCache | None = None,
        registry: Registry | None = None,
        seed: int = 0,
        concurrency: int = 8,
        judge_client: ModelClient | None = None,
    ) -> None:
        self.dataset = dataset
        self.client = client
        self.metric = metric
        self.limits = limits or Limits()
        self.cache = cache
        self.registry = registry
        self.seed = seed
        self.concurrency = concurrency
        self.judge_client = judge_client

    async def evaluate_chunks(
        self,
        pipeline: Pipeline,
        items: Sequence[EvalItem],
        *,
        chunk_size: int,
        budget: Meter | None,
    ) -> AsyncGenerator[Progress, None]:
        """See :class:`Evaluator`."""
        from archon.eval.evaluate import ChunkReport, evaluate_chunks

        tally = _Tally()
        # an async generator (typed as an iterator there): closed at once when a trial is pruned
        chunks = cast(
            AsyncGenerator[ChunkReport, None],
            evaluate_chunks(
                pipeline,
                self.dataset.with_items(items),
                chunk_size=max(1, chunk_size),
                client=self.client,
                limits=self.limits,
                cache=self.cache,
                metric=self.metric,
                concurrency=self.concurrency,
                budget=budget,
                registry=self.registry,
                judge_client=self.judge_client,
                trace=tally,
                seed=self.seed,
            ),
        )
        async with contextlib.aclosing(chunks):
            async for report in chunks:
                summary = report.summary
                cost = summary.cost
                yield Progress(
                    items_done=report.step,
                    score=summary.score or 0.0,
                    calls=cost.calls,
                    cache_hits=cost.cache_hits,
                    tokens=cost.prompt_tokens + cost.completion_tokens,
                    usd=cost.usd,
                    usd_equivalent=tally.usd_equivalent,
                    failed=summary.errors,
                    stopped=_limit_of(report.stopped),
                )
