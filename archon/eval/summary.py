"""Aggregates over item records: score, accuracy, pass@k, coverage, verifier false positives,
and cost per query.

Everything here is computed from :class:`~archon.eval.records.ItemRecord`\\ s alone, so a
resumed evaluation reports exactly what an uninterrupted one would. :func:`summarize` is the
pure entry point; :class:`Tally` is the incremental form used for running aggregates.

Definitions (per item, then averaged over items):

* ``score``: the mean metric value; a failed item counts as 0. Invalid scores (e.g. an
  unparseable judgement) are left out and counted in ``invalid``.
* ``accuracy``: the share of items whose answer is correct (failed items are wrong); None for
  metrics without a notion of correctness (judge ratings).
* ``pass@k``: the unbiased estimator over the candidates of the pipeline's *source* nodes
  (nodes reading no other node, e.g. ``generate``): ``n`` samples, ``c`` correct.
* ``coverage``: the share of items where *any* candidate of *any* node is correct -- the
  accuracy an oracle verifier could reach with what the pipeline produced.
* ``verifier_fpr``: over the outputs of filtering nodes (kinds that declare
  ``Layer.is_filter``, e.g. ``verify`` and ``unit_test_evaluate``), the share of candidates
  they kept that are wrong (wrong kept / kept).
* ``cost.by_model``: calls, cache hits and tokens per model, so that a role on a 1.5B model
  and a role on a 0.5B model are reported apart.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict

from archon.eval.metrics.sampling import pass_at_k
from archon.eval.records import ItemRecord, ModelUsage, merge_usage
from archon.layers.registry import Registry
from archon.values import Usage

PASS_K: tuple[int, ...] = (1, 5, 10)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def declared_filters(registry: Registry | None = None) -> tuple[str, ...]:
    """The kinds of ``registry`` (default: the built-in one) that declare ``is_filter``."""
    if registry is None:
        from archon.layers import default_registry

        registry = default_registry()
    return tuple(layer.kind for layer in registry if layer.is_filter)


class Spread(_Frozen):
    """Mean, median and maximum of one per-query quantity."""

    mean: float = 0.0
    median: float = 0.0
    max: float = 0.0

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            return cls()
        return cls(mean=statistics.fmean(values), median=statistics.median(values), max=max(values))


class PerQuery(_Frozen):
    """Per-query spend of the answered items, cache hits counted as the calls they stand for.

    Attributes:
        calls: model calls per query; ``tokens``: prompt plus completion tokens per query
            (a cache hit counts what the stored response cost).
        exited: items an early-exit gate stopped before the last stage.
    """

    calls: Spread = Spread()
    tokens: Spread = Spread()
    exited: int = 0


class PerQueryTally:
    """Collects one query's calls, tokens and early exit at a time; :meth:`per_query` gives
    the :class:`PerQuery` of all so far (evaluation and search both keep one)."""

    def __init__(self) -> None:
        self._calls: list[int] = []
        self._tokens: list[int] = []
        self._exited = 0

    def add(self, calls: int, tokens: int, exited: bool) -> None:
        self._calls.append(calls)
        self._tokens.append(tokens)
        self._exited += int(exited)

    def per_query(self) -> PerQuery:
        return PerQuery(
            calls=Spread.of(self._calls), tokens=Spread.of(self._tokens), exited=self._exited
        )


class Cost(_Frozen):
    """What the pipeline spent over ``items`` items (totals), and the judges apart."""

    items: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: float = 0.0
    seconds: float = 0.0
    cache_hits: int = 0
    judge: Usage = Usage()
    by_model: tuple[ModelUsage, ...] = ()
    per_query: PerQuery | None = None
    """How calls and tokens spread over the queries (early exit makes them differ)."""

    def _per(self, total: float) -> float:
        return total / self.items if self.items else 0.0

    @property
    def calls_per_item(self) -> float:
        return self._per(self.calls)

    @property
    def tokens_in_per_item(self) -> float:
        return self._per(self.prompt_tokens)

    @property
    def tokens_out_per_item(self) -> float:
        return self._per(self.completion_tokens)

    @property
    def usd_per_item(self) -> float:
        return self._per(self.usd)

    @property
    def seconds_per_item(self) -> float:
        """Mean latency of one item (all its turns)."""
        return self._per(self.seconds)


class Summary(_Frozen):
    """Aggregates of the items scored so far (see the module docstring for definitions)."""

    n: int = 0
    errors: int = 0
    invalid: int = 0
    score: float | None = None
    accuracy: float | None = None
    pass_at: tuple[tuple[int, float], ...] = ()
    coverage: float | None = None
    candidates_per_item: float = 0.0
    verifier_kept: int = 0
    verifier_wrong: int = 0
    cost: Cost = Cost()

    @property
    def verifier_fpr(self) -> float | None:
        """Wrong candidates kept by filtering nodes / candidates they kept (None if none)."""
        return self.verifier_wrong / self.verifier_kept if self.verifier_kept else None

    def pass_at_k(self, k: int) -> float | None:
        """The mean pass@k (None when no item had ``k`` source samples)."""
        return next((v for kk, v in self.pass_at if kk == k), None)


class Tally:
    """Running sums over records; :meth:`summary` gives a frozen :class:`Summary`."""

    def __init__(
        self, pass_k: Sequence[int] = PASS_K, filter_kinds: Sequence[str] | None = None
    ) -> None:
        self._pass_k = tuple(pass_k)
        self._filters = frozenset(filter_kinds if filter_kinds is not None else declared_filters())
        self.n = self.errors = self.invalid = 0
        self._value_sum = 0.0
        self._valued = 0
        self._correct = 0
        self._judged = 0
        self._pass_sums = dict.fromkeys(self._pass_k, 0.0)
        self._pass_items = dict.fromkeys(self._pass_k, 0)
        self._covered = 0
        self._coverable = 0
        self._candidates = 0
        self._kept = self._wrong_kept = 0
        self._usage = Usage()
        self._judge = Usage()
        self._seconds = 0.0
        self._hits = 0
        self._by_model: tuple[ModelUsage, ...] = ()
        self._per_query = PerQueryTally()

    def add(self, record: ItemRecord) -> None:
        """Count one record."""
        self.n += 1
        self._usage = self._usage + record.usage
        self._judge = self._judge + record.judge_usage
        self._seconds += record.seconds
        self._hits += record.cache_hits
        self._by_model = merge_usage(self._by_model, record.by_model)
        self._per_query.add(record.calls_needed, record.tokens_needed, record.exited_at is not None)
        if not record.ok:
            # A failed item scores 0, is wrong and covers nothing.
            self.errors += 1
            self._valued += 1
            return
        if not record.valid:
            self.invalid += 1
        else:
            self._valued += 1
            self._value_sum += record.score
        if record.correct is not None:
            self._judged += 1
            self._correct += int(record.correct)
        self._add_candidates(record)

    def _add_candidates(self, record: ItemRecord) -> None:
        cands = record.candidates
        self._candidates += len(cands)
        scored = [c for c in cands if c.correct is not None]
        if not scored:
            return
        self._coverable += 1
        self._covered += int(any(c.correct for c in scored))
        source = [c for c in scored if c.source]
        n, c = len(source), sum(1 for x in source if x.correct)
        for k in self._pass_k:
            if n >= k:
                self._pass_sums[k] += pass_at_k(n, c, k)
                self._pass_items[k] += 1
        kept = [x for x in scored if x.kind in self._filters]
        self._kept += len(kept)
        self._wrong_kept += sum(1 for x in kept if not x.correct)

    def summary(self) -> Summary:
        """The aggregates so far."""
        return Summary(
            n=self.n,
            errors=self.errors,
            invalid=self.invalid,
            score=self._value_sum / self._valued if self._valued else None,
            accuracy=self._correct / (self._judged + self.errors) if self._judged else None,
            pass_at=tuple(
                (k, self._pass_sums[k] / self._pass_items[k])
                for k in self._pass_k
                if self._pass_items[k]
            ),
            coverage=(self._covered / (self._coverable + self.errors) if self._coverable else None),
            candidates_per_item=self._candidates / self.n if self.n else 0.0,
            verifier_kept=self._kept,
            verifier_wrong=self._wrong_kept,
            cost=Cost(
                items=self.n,
                calls=self._usage.calls,
                prompt_tokens=self._usage.prompt_tokens,
                completion_tokens=self._usage.completion_tokens,
                usd=self._usage.usd,
                seconds=self._seconds,
                cache_hits=self._hits,
                judge=self._judge,
                by_model=self._by_model,
                per_query=self._per_query.per_query(),
            ),
        )


def summarize(
    records: Iterable[ItemRecord],
    *,
    pass_k: Sequence[int] = PASS_K,
    filter_kinds: Sequence[str] | None = None,
) -> Summary:
    """Aggregates of ``records`` (see the module docstring); ``filter_kinds`` defaults to
    the built-in kinds that declare ``is_filter``."""
    tally = Tally(pass_k, filter_kinds)
    for record in records:
        tally.add(record)
    return tally.summary()
