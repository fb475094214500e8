"""What a trial measures: chunked evaluation of one concrete pipeline on a list of items.

Search needs an evaluation that reports as it goes, so that a poor configuration can be
pruned after a few chunks of the dev split. :class:`Evaluator` is that contract: given a
concrete pipeline and items, yield one :class:`Progress` per chunk with the running score and
what was spent so far. Implementations:

* :class:`EvalEvaluator` (the default) runs :func:`archon.eval.evaluate.evaluate_chunks` with the
  dataset's metric; one shared :class:`~archon.runtime.Limits`, :class:`~archon.runtime.CallCache`
  and run-level :class:`~archon.runtime.Meter` serve every trial;
* :class:`RuntimeEvaluator` scores any items with a plain ``score(item, answer)`` function,
  made a metric (:class:`~archon.eval.metrics.function.FunctionMetric`) and evaluated by
  :class:`EvalEvaluator` -- there is one evaluation path;
* :class:`archon.search.simulator.SimulatedEvaluator` scores instantly from a known function
  of the architecture (tests and benchmarks).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from archon.errors import ArchonError
from archon.eval.config import EvalConfig
from archon.eval.items import Dataset, EvalItem
from archon.eval.metrics.function import FunctionMetric, ScoreFunction
from archon.eval.records import ModelUsage
from archon.eval.summary import PerQuery
from archon.ir import Pipeline
from archon.runtime import (
    BudgetExceeded,
    CallCache,
    CallRecord,
    Meter,
    ModelClient,
    RunEnv,
)
from archon.runtime.env import resolve_env
from archon.runtime.events import fan_out
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
        stopped: the run-level (search) budget limit that ran out, making the evaluation
            incomplete (its ``limit``: ``calls``, ``usd``, ``seconds``, ``tokens``); else None.
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
    stopped: BudgetExceeded | None = None
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

    def record(self, record: CallRecord) -> None:
        self.records += 1
        self.usd_equivalent += record.usd


class RuntimeEvaluator(Generic[T]):
    """Scores pipelines on any items with a plain ``score(item, answer)`` function.

    The function becomes a metric (:class:`~archon.eval.metrics.function.FunctionMetric`),
    each item an :class:`~archon.eval.items.EvalItem` asking ``query(item)``, and the trial
    is evaluated by :class:`EvalEvaluator` -- the one evaluation path, with eval's reports.

    Args:
        env: the run environment shared by every trial (or a model client, with the other
            :class:`~archon.runtime.RunEnv` fields -- ``limits``, ``cache``, ``registry``,
            ``seed`` -- as keywords).
        score: ``score(item, answer) -> float`` in [0, 1] (sync or async).
        query: ``query(item)`` -> what the pipeline is asked (a string, or a system message
            and one user message).
        max_in_flight: queries of one trial run at once (default: the limits' concurrency).
    """

    def __init__(
        self,
        env: RunEnv | ModelClient,
        score: ScoreFunction,
        query: Callable[[T], Query],
        *,
        max_in_flight: int | None = None,
        **env_fields: Any,
    ) -> None:
        if isinstance(env, RunEnv):
            self.env = resolve_env(env, None, env_fields, "RuntimeEvaluator")
        else:
            self.env = resolve_env(None, env, env_fields, "RuntimeEvaluator")
        self.score = score
        self.query = query
        self._items: dict[str, T] = {}
        self.metric = FunctionMetric(score, "score", item_of=lambda item: self._items[item.id])
        config = EvalConfig(
            env=self.env,
            metric=self.metric,
            concurrency=max(1, max_in_flight or self.env.limits.max_concurrency),
            score_candidates=False,
        )
        self._eval = EvalEvaluator(Dataset(name="search", items=(), metric="score"), config)

    @property
    def cache(self) -> CallCache | None:
        return self.env.cache

    def _item(self, item: T, position: int) -> EvalItem:
        key = str(getattr(item, "id", position))
        self._items[key] = item
        asked = self.query(item)
        if isinstance(asked, str):
            return EvalItem(id=key, turns=(asked,))
        messages = tuple(asked)
        system = [m.content for m in messages if m.role == "system"]
        users = [m.content for m in messages if m.role == "user"]
        if len(users) != 1 or len(system) + len(users) != len(messages):
            raise ArchonError(
                "RuntimeEvaluator asks a string, or a system message and one user message;"
                " evaluate conversations with EvalEvaluator and EvalItem turns"
            )
        return EvalItem(id=key, turns=(users[0],), system=system[0] if system else None)

    async def evaluate_chunks(
        self,
        pipeline: Pipeline,
        items: Sequence[T],
        *,
        chunk_size: int,
        budget: Meter | None,
    ) -> AsyncGenerator[Progress, None]:
        """See :class:`Evaluator`."""
        wrapped = [self._item(item, position) for position, item in enumerate(items)]
        chunks = self._eval.evaluate_chunks(pipeline, wrapped, chunk_size=chunk_size, budget=budget)
        async with contextlib.aclosing(chunks):
            async for progress in chunks:
                yield progress


class EvalEvaluator:
    """Scores with :func:`archon.eval.evaluate.evaluate_chunks` and the dataset's metric.

    Args:
        dataset: the dataset the items come from (its name and default metric).
        config: how every trial is evaluated: the client, limits, cache, metric, seed,
            concurrency (items of one trial in flight at once) ... The search's shared meter
            replaces ``config.budget`` for each evaluation; a ``config.trace`` still receives
            every call, stage and node event.

    Judge calls made by a metric are not charged to the search budget (evaluation keeps
    them apart from the pipeline's own cost).
    """

    def __init__(self, dataset: Dataset, config: EvalConfig) -> None:
        self.dataset = dataset
        self.config = config

    @property
    def cache(self) -> CallCache | None:
        """The call cache every trial shares (its ``bank_hits`` count the bank's answers)."""
        return self.config.env.cache

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

        tally = _Tally()  # the user's sink (--otel) gets every record and event beside it
        config = self.config.replace(budget=budget, trace=fan_out(tally, self.config.env.trace))
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
        stopped=report.stopped,
        by_model=cost.by_model,
        scores=scores,
        per_query=cost.per_query,
    )
