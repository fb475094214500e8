"""Reading a study back: typed summaries of its trials, the best ones and the baseline.

Everything here is rebuilt from storage alone (the template is stored in the study's user
attrs), so ``archon search --report`` works from any machine that can reach the storage.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from archon.eval.stats import Difference, paired_bootstrap_ci, paired_difference
from archon.ir import Pipeline
from archon.search.paired import P_THRESHOLD, PairedVerdict, paired_verdict
from archon.search.record import (
    FULL_DEV_PREFIX,
    REFERENCE_PREFIX,
    StopReason,
    StoredResult,
    StudyKey,
    TrialKey,
    TrialRecord,
    WinnerRecord,
    as_float,
    as_scores,
    numbered,
    prefixed,
)
from archon.search.space import decode_params, params_json
from archon.search.storage import StudyMismatch, open_storage, test_results
from archon.values import Usage


def stored_results(study: optuna.Study, prefix: str) -> dict[str, Mapping[str, Any]]:
    """Results stored as study user attributes ``prefix + key``, by key."""
    return prefixed(study.user_attrs, prefix)


def promoted_results(study: optuna.Study) -> dict[int, Mapping[str, Any]]:
    """Whole-dev-split re-evaluations by trial number."""
    return {
        number: value
        for number, value in numbered(study.user_attrs, FULL_DEV_PREFIX).items()
        if StoredResult.from_json(value).score is not None
    }


def item_scores(result: Mapping[str, Any]) -> dict[str, float]:
    """The per-item scores a stored result holds (``scores``: ``[[id, score], ...]``)."""
    return as_scores(result.get(TrialKey.SCORES))


@dataclass(frozen=True)
class Estimate:
    """A mean score with its 95 % confidence interval.

    Attributes:
        score: the mean score (a fraction).
        low, high: the 95 % interval.
        items: the items it was measured on.
        method: ``bootstrap`` (percentile bootstrap over the per-item scores) or ``wilson``
            (Wilson score interval from the mean and the item count, when per-item scores
            were not stored: exact for 0/1 metrics, an approximation otherwise).
    """

    score: float
    low: float
    high: float
    items: int
    method: str

    def text(self) -> str:
        """E.g. ``0.812 [0.700, 0.900] n=40``."""
        return f"{self.score:.3f} [{self.low:.3f}, {self.high:.3f}] n={self.items}"

    def as_json(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "ci95": [self.low, self.high],
            "items": self.items,
            "method": self.method,
        }


def wilson_interval(score: float, items: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``score`` measured on ``items`` items."""
    if items <= 0:
        return 0.0, 1.0
    p = min(1.0, max(0.0, score))
    denominator = 1.0 + z * z / items
    centre = (p + z * z / (2 * items)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / items + z * z / (4 * items * items)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def estimate(
    scores: Mapping[str, float] | None = None,
    score: float | None = None,
    items: int | None = None,
) -> Estimate | None:
    """The mean score with its 95 % interval: bootstrapped from per-item ``scores`` when
    there are any, else a Wilson interval from ``score`` and ``items`` (None: neither)."""
    if scores:
        values = [float(v) for v in scores.values()]
        mean, low, high = paired_bootstrap_ci(values, [0.0] * len(values))
        return Estimate(mean, low, high, len(values), "bootstrap")
    if score is None or not items:
        return None
    low, high = wilson_interval(score, items)
    return Estimate(score, low, high, items, "wilson")


@dataclass(frozen=True)
class Shrinkage:
    """How one trial's score moved from the dev items it was chosen on to the whole dev split
    and the held-out test split (the winner's curse: a best-of-N score shrinks).

    Attributes:
        label: ``best`` or ``baseline``.
        number: the trial number.
        dev: the score on the trial's own dev items (what the search saw).
        whole_dev: the re-evaluation on the whole dev split (promotion; None: not promoted).
        test: the held-out test score (None: not tested).
    """

    label: str
    number: int
    dev: Estimate | None
    whole_dev: Estimate | None
    test: Estimate | None

    def as_json(self) -> dict[str, Any]:
        def part(value: Estimate | None) -> dict[str, Any] | None:
            return None if value is None else value.as_json()

        return {
            "label": self.label,
            "trial": self.number,
            "dev": part(self.dev),
            "whole_dev": part(self.whole_dev),
            "test": part(self.test),
        }


def shrinkage_of(label: str, trial: TrialSummary) -> Shrinkage:
    """The dev, whole-dev and test estimates of ``trial``."""
    return Shrinkage(
        label=label,
        number=trial.number,
        dev=estimate(trial.dev_scores, trial.dev_score, trial.dev_items),
        whole_dev=estimate(trial.full_dev_scores, trial.full_dev_score, trial.full_dev_items),
        test=estimate(trial.test_scores, trial.test_score, trial.test_items),
    )


@dataclass(frozen=True)
class Reference:
    """A baseline evaluated on the test split next to the best trial.

    Attributes:
        name: ``single[model]`` (one greedy sample) or ``voteN[model]`` (equal-cost repeated
            sampling of the best single model, majority vote).
        score, items: its test result; ``calls_per_item``: what it spent per query.
        scores: per-item test scores, by item id.
    """

    name: str
    score: float | None
    items: int
    calls_per_item: float | None
    scores: Mapping[str, float]


@dataclass(frozen=True)
class TrialSummary:
    """One trial as the reports show it.

    Attributes:
        number: Optuna trial number.
        state: ``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING`` or ``WAITING``.
        values: objective values (quality; pareto: quality and cost per query).
        params: hole values as JSON data (lists for list options): a ``best.json``.
        dev_score: mean metric on the dev items evaluated (partial when pruned).
        dev_items: dev items evaluated.
        cost_per_query: calls (or USD) per query, cache hits counted at full cost.
        estimated_calls: static per-query call estimate of the configuration.
        calls / cache_hits / usd: what the evaluation spent (cache hits are free).
        infeasible: why the configuration was rejected before any call (else None).
        duplicate_of: an earlier trial with the same concrete pipeline whose result was reused.
        baseline: the template's defaults (trial 0 of a new study).
        test_score / test_items: held-out test result, when re-evaluated.
        test_scores: per-item test scores by item id (for paired comparisons).
        full_dev_score / full_dev_items: the re-evaluation on the whole dev split, when the
            trial was promoted (trials saw only ``trial_items`` dev items).
        by_model: calls and tokens per model of the dev evaluation.
        per_query: mean, median and max calls and tokens per query of the dev evaluation
            and the items stopped at an early exit (``{"calls": {"mean": ...}, ...}``).
        pipeline_json: the concrete pipeline as JSON.
        dev_scores / full_dev_scores: per-item scores of the trial's dev evaluation (when
            stored) and of its whole-dev re-evaluation, by item id.
        attrs: every user attribute of the trial as stored (``wall_s``, ``pruned_by`` ...).
    """

    number: int
    state: str
    values: tuple[float, ...] | None
    params: Mapping[str, Any]
    dev_score: float | None = None
    dev_items: int = 0
    cost_per_query: float | None = None
    estimated_calls: int | None = None
    calls: int = 0
    cache_hits: int = 0
    usd: float = 0.0
    infeasible: str | None = None
    duplicate_of: int | None = None
    baseline: bool = False
    test_score: float | None = None
    test_items: int | None = None
    test_scores: Mapping[str, float] = field(default_factory=dict)
    full_dev_score: float | None = None
    full_dev_items: int | None = None
    by_model: Mapping[str, Any] = field(default_factory=dict)
    per_query: Mapping[str, Any] = field(default_factory=dict)
    pipeline_json: str | None = None
    dev_scores: Mapping[str, float] = field(default_factory=dict)
    full_dev_scores: Mapping[str, float] = field(default_factory=dict)
    attrs: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def quality(self) -> float | None:
        """The first objective value (the metric), if the trial completed."""
        return None if not self.values else self.values[0]

    def pipeline(self) -> Pipeline | None:
        """The trial's concrete pipeline (None if it never got that far)."""
        if self.pipeline_json is None:
            return None
        return Pipeline.model_validate_json(self.pipeline_json)


@dataclass(frozen=True)
class StudyReport:
    """A study's trials, its best trials, its baseline (trial 0) and the reference baselines
    (single samples, equal-cost vote) on the test split, from storage."""

    study_name: str
    objective: str
    cost_unit: str
    template_fingerprint: str | None
    trials: tuple[TrialSummary, ...]
    best: tuple[TrialSummary, ...]
    baseline: TrialSummary | None
    references: tuple[Reference, ...] = ()
    winner_note: str | None = None
    """How the winner was chosen (the paired rule), or None."""

    def test_difference(self) -> Difference | None:
        """Best minus baseline (trial 0) on the test split, paired by item, with its 95 % CI."""
        if not self.best or self.baseline is None:
            return None
        return paired_difference(self.best[0].test_scores, self.baseline.test_scores)

    def shrinkage(self) -> list[Shrinkage]:
        """The best trial's and the baseline's dev, whole-dev and test scores with 95 % CIs."""
        rows = [shrinkage_of("best", self.best[0])] if self.best else []
        if self.baseline is not None:
            rows.append(shrinkage_of("baseline", self.baseline))
        return rows

    def reference_differences(self) -> list[tuple[Reference, Difference | None]]:
        """Best minus each reference baseline on the test split, paired by item."""
        best = self.best[0].test_scores if self.best else {}
        return [(ref, paired_difference(best, ref.scores)) for ref in self.references]

    def counts(self) -> dict[str, int]:
        """Number of trials per state, with ``infeasible`` split out of ``PRUNED``."""
        counts: dict[str, int] = {}
        for trial in self.trials:
            key = "INFEASIBLE" if trial.infeasible else trial.state
            counts[key] = counts.get(key, 0) + 1
        return counts


@dataclass(frozen=True)
class SearchResult:
    """What :func:`archon.search.search` returns.

    Attributes:
        report: the study as stored (all workers' trials).
        storage: the storage URL (None: in memory).
        stopped: why this search stopped, typed (its ``str()``: ``trials``, ``calls budget``,
            ``grid exhausted`` ...).
        spent: calls, tokens and USD this search spent (test re-evaluation included).
        cache_hits: calls answered from the cache during this search.
        usd_saved: what those cache hits would have cost.
        seconds: wall time.
        new_trials: trials this search finished.
        recovered: trials of dead workers it failed and re-enqueued.
    """

    report: StudyReport
    storage: str | None
    stopped: StopReason
    spent: Usage = field(default_factory=Usage)
    cache_hits: int = 0
    usd_saved: float = 0.0
    seconds: float = 0.0
    new_trials: int = 0
    recovered: tuple[int, ...] = ()

    @property
    def best(self) -> tuple[TrialSummary, ...]:
        """The best trial (quality) or the Pareto front, best quality first."""
        return self.report.best

    @property
    def baseline(self) -> TrialSummary | None:
        return self.report.baseline

    def best_pipeline(self) -> Pipeline | None:
        """The concrete pipeline of the best trial (highest quality on the front)."""
        return self.best[0].pipeline() if self.best else None

    def best_params(self) -> dict[str, Any]:
        """The best trial's hole values as JSON data (what ``best.json`` holds)."""
        return dict(self.best[0].params) if self.best else {}


def summarize_trial(
    trial: FrozenTrial,
    template: Pipeline | None,
    tests: Mapping[int, Mapping[str, Any]],
    promoted: Mapping[int, Mapping[str, Any]] | None = None,
) -> TrialSummary:
    """A :class:`TrialSummary` of ``trial`` (``template`` decodes list-valued options)."""
    attrs = trial.user_attrs
    record = TrialRecord.from_attrs(attrs)
    try:
        params = (
            params_json(decode_params(template, trial.params))
            if template is not None
            else dict(trial.params)
        )
    except Exception:  # a trial of an older template: show what is stored
        params = dict(trial.params)
    test = tests.get(trial.number, {})
    full = (promoted or {}).get(trial.number, {})
    values = tuple(trial.values) if trial.values is not None else None
    tested, promoted_run = StoredResult.from_json(test), StoredResult.from_json(full)
    return TrialSummary(
        number=trial.number,
        state=trial.state.name,
        values=values,
        params=params,
        dev_score=record.score,
        dev_items=record.items,
        cost_per_query=record.cost_per_query,
        estimated_calls=record.est_calls,
        calls=record.calls,
        cache_hits=record.cache_hits,
        usd=record.usd,
        infeasible=record.infeasible,
        duplicate_of=record.duplicate_of,
        baseline=record.baseline,
        test_score=tested.score,
        test_items=tested.items,
        test_scores=tested.scores,
        full_dev_score=promoted_run.score,
        full_dev_items=promoted_run.items,
        by_model=record.by_model,
        per_query=record.per_query,
        pipeline_json=record.pipeline,
        dev_scores=record.scores,
        full_dev_scores=promoted_run.scores,
        attrs=attrs,
    )


def stored_template(study: optuna.Study) -> Pipeline | None:
    """The template recorded in the study (None for a study archon did not create)."""
    data = study.user_attrs.get(StudyKey.TEMPLATE)
    if not isinstance(data, dict):
        return None
    try:
        return Pipeline.model_validate(data)
    except ValueError:
        return None


def best_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The winner (one objective, see :func:`winner_choice`) or the Pareto front sorted by
    quality, best first."""
    complete = feasible(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if not complete:
        return []
    if len(study.directions) == 1:
        choice = winner_choice(study)
        return [choice.trial] if choice is not None else []
    front = [
        t
        for t in complete
        if not any(_dominates(o.values, t.values) for o in complete if o is not t)
    ]
    return sorted(front, key=lambda t: (-t.values[0], t.values[1], t.number))


@dataclass(frozen=True)
class WinnerChoice:
    """The winner of a single-objective study and how it was chosen.

    Attributes:
        trial: the winner.
        challenger: the best trial by score when the paired rule kept the baseline instead.
        verdict: the paired comparison of the best trial with the baseline (paired rule).
    """

    trial: FrozenTrial
    challenger: FrozenTrial | None = None
    verdict: PairedVerdict | None = None

    def describe(self) -> str | None:
        """How the winner was chosen, in one sentence (None when no rule applied)."""
        if self.verdict is None:
            return None
        if self.challenger is not None:
            return (
                f"the baseline (trial {self.trial.number}) stays the winner: the best trial"
                f" {self.challenger.number} is not significantly better on the same items"
                f" ({self.verdict.describe()})"
            )
        return (
            f"trial {self.trial.number} replaces the baseline: significantly better on the same"
            f" items ({self.verdict.describe()})"
        )


def winner_choice(study: optuna.Study) -> WinnerChoice | None:
    """The winner of a single-objective study (None: no complete feasible trial).

    When trials were promoted to the whole dev split, the best is the promoted trial with the
    highest whole-split score (ties: the lower calls per query on the whole split, then trial
    value, then number): the choice is made on the most dev items, not on the few every trial
    saw, and at equal quality the cheaper configuration wins. Under the ``paired`` winner rule
    (the search's default) that trial then replaces the baseline only if it is significantly
    better than the baseline on the same items (:func:`archon.search.paired.paired_verdict`).
    """
    complete = feasible(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if not complete:
        return None
    promoted = {n: StoredResult.from_json(r) for n, r in promoted_results(study).items()}
    chosen = [t for t in complete if t.number in promoted]
    if chosen:
        top = max(
            chosen,
            key=lambda t: (
                promoted[t.number].score or 0.0,
                -_promoted_cost(promoted[t.number], t),
                t.values[0],
                -t.number,
            ),
        )
        pool = chosen
        scores = {t.number: promoted[t.number].scores for t in chosen}
    else:
        top = max(complete, key=lambda t: (t.values[0], -cost_of(t), -t.number))
        pool = complete
        scores = {t.number: item_scores(t.user_attrs) for t in complete}
    rule = WinnerRecord.from_json(study.user_attrs.get(StudyKey.WINNER_RULE))
    if rule is None or rule.rule != "paired":
        return WinnerChoice(top)
    baseline = next((t for t in pool if t.user_attrs.get(TrialKey.BASELINE)), None)
    if baseline is None or baseline.number == top.number:
        return WinnerChoice(top)
    verdict = paired_verdict(
        scores[top.number],
        scores[baseline.number],
        p_threshold=P_THRESHOLD if rule.p_threshold is None else rule.p_threshold,
    )
    if verdict.better:
        return WinnerChoice(top, verdict=verdict)
    return WinnerChoice(baseline, challenger=top, verdict=verdict)


def cost_of(trial: FrozenTrial) -> float:
    """The trial's measured cost per query (calls or USD, cache hits counted; unknown: inf),
    the tie-break between equal scores: at equal quality, less compute wins."""
    value = as_float(trial.user_attrs.get(TrialKey.COST_PER_QUERY))
    return math.inf if value is None else value


def _promoted_cost(result: StoredResult, trial: FrozenTrial) -> float:
    """Calls per query of a whole-dev re-evaluation (comparable across trials, unlike the
    cost on screened items), else the trial's own cost."""
    value = result.calls_per_item
    return cost_of(trial) if value is None else value


def feasible(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """``trials`` without those over the search's per-query constraint (``max_mean_calls``)."""
    return [t for t in trials if not _violates(t.user_attrs.get(TrialKey.CONSTRAINT))]


def _violates(value: Any) -> bool:
    excess = as_float(value)
    return excess is not None and excess > 0


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether (quality, cost) ``a`` Pareto-dominates ``b`` (higher quality, lower cost)."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def summarize(study: optuna.Study) -> StudyReport:
    """A :class:`StudyReport` of ``study``."""
    template = stored_template(study)
    tests = test_results(study)
    promoted = promoted_results(study)
    trials = study.get_trials(deepcopy=False)
    summaries = tuple(summarize_trial(t, template, tests, promoted) for t in trials)
    by_number = {s.number: s for s in summaries}
    best = tuple(by_number[t.number] for t in best_trials(study))
    baseline = next(
        (s for s in summaries if s.baseline and s.state == "COMPLETE"),
        next((s for s in summaries if s.baseline), None),
    )
    attrs = study.user_attrs
    return StudyReport(
        study_name=study.study_name,
        objective=str(attrs.get(StudyKey.OBJECTIVE, "quality")),
        cost_unit=str(attrs.get(StudyKey.COST_UNIT, "calls")),
        template_fingerprint=attrs.get(StudyKey.TEMPLATE_FINGERPRINT),
        trials=summaries,
        best=best,
        baseline=baseline,
        references=_references(study),
        winner_note=_winner_note(study),
    )


def _winner_note(study: optuna.Study) -> str | None:
    if len(study.directions) != 1:
        return None
    choice = winner_choice(study)
    return choice.describe() if choice is not None else None


def _references(study: optuna.Study) -> tuple[Reference, ...]:
    stored = stored_results(study, REFERENCE_PREFIX)
    results = sorted(
        ((name, StoredResult.from_json(data)) for name, data in stored.items()),
        key=lambda pair: pair[1].order,
    )
    return tuple(
        Reference(
            name=name,
            score=result.score,
            items=result.items or 0,
            calls_per_item=result.calls_per_item,
            scores=result.scores,
        )
        for name, result in results
    )


def load_report(storage: str, study_name: str | None = None) -> StudyReport:
    """The report of a stored study (the only study in the storage when no name is given)."""
    backend = open_storage(storage)
    if study_name is None:
        names = [s.study_name for s in optuna.get_all_study_summaries(backend)]
        if len(names) != 1:
            raise StudyMismatch(
                f"{storage} holds {len(names)} studies ({', '.join(names) or 'none'}):"
                " name one with --study"
            )
        study_name = names[0]
    study = optuna.load_study(study_name=study_name, storage=backend)
    return summarize(study)


def ranked(report: StudyReport, top: int | None = None) -> list[TrialSummary]:
    """Completed trials, best first (pareto: front first, then by quality)."""
    front = {t.number for t in report.best}
    done = [t for t in report.trials if t.state == "COMPLETE" and t.values]
    done.sort(key=lambda t: (t.number not in front, -(t.quality or -math.inf), t.number))
    return done if top is None else done[:top]


def _difference(diff: Difference | None) -> dict[str, Any] | None:
    if diff is None:
        return None
    return {
        "diff": diff.diff,
        "ci95": [diff.low, diff.high],
        "items": diff.items,
        "excludes_zero": diff.excludes_zero,
    }


def to_json(report: StudyReport, top: int | None = None) -> str:
    """The report as JSON (for ``--format json``)."""

    def trial(t: TrialSummary) -> dict[str, Any]:
        return {
            "number": t.number,
            "state": t.state,
            "values": list(t.values) if t.values else None,
            "params": dict(t.params),
            "dev_score": t.dev_score,
            "dev_items": t.dev_items,
            "test_score": t.test_score,
            "test_items": t.test_items,
            "full_dev_score": t.full_dev_score,
            "full_dev_items": t.full_dev_items,
            "by_model": dict(t.by_model),
            "per_query": dict(t.per_query),
            "cost_per_query": t.cost_per_query,
            "estimated_calls": t.estimated_calls,
            "baseline": t.baseline,
        }

    data = {
        "study": report.study_name,
        "objective": report.objective,
        "cost_unit": report.cost_unit,
        "counts": report.counts(),
        "best": [trial(t) for t in report.best],
        "winner_rule": report.winner_note,
        "baseline": trial(report.baseline) if report.baseline else None,
        "top": [trial(t) for t in ranked(report, top)],
        "test_difference": _difference(report.test_difference()),
        "shrinkage": [row.as_json() for row in report.shrinkage()],
        "references": [
            {
                "name": ref.name,
                "score": ref.score,
                "items": ref.items,
                "calls_per_item": ref.calls_per_item,
                "best_minus_reference": _difference(diff),
            }
            for ref, diff in report.reference_differences()
        ],
    }
    return json.dumps(data, indent=2)
