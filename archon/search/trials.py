"""Trial evaluation: turn one Optuna trial into an :class:`Outcome`.

For one trial, :class:`TrialRunner`:

1. materialises the configuration from the trial's parameters;
2. rejects it before any call when its static cost estimate is over the per-query budget
   (``infeasible``, pruned);
3. reuses the result of an identical concrete pipeline evaluated earlier (``duplicate_of``),
   waiting for it when it is still being evaluated;
4. otherwise evaluates it on the dev items in chunks, reporting each chunk to the pruner
   (quality objective) and recording what it spent as trial user attributes.

A trial cut short by the search budget raises :class:`Interrupted` (the study loop fails and
re-enqueues it); pruning and failures are outcomes, not exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from archon.compiler.cost import estimate
from archon.compiler.structure import AssignmentError
from archon.ir import Pipeline, strip_spans
from archon.search.context import SearchContext, SearchState
from archon.search.objective import Progress
from archon.search.paired import Incumbent, ItemScreen, dominated
from archon.search.record import StopReason, TrialKey, as_float, scores_json
from archon.search.report import feasible, item_scores
from archon.search.space import SearchSpaceError, materialize

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What a trial gives the study: its state, objective values and result attributes."""

    state: TrialState
    values: list[float] | None = None
    number: int | None = None  # the trial that was evaluated (for duplicates)
    results: dict[str, Any] = field(default_factory=dict)  # its score, items, cost per query


class Interrupted(Exception):
    """A trial stopped because the search budget ran out mid-evaluation.

    Attributes:
        reason: which limit of the search budget (``calls``, ``usd``, ``seconds`` ...).
    """

    def __init__(self, reason: StopReason) -> None:
        super().__init__(str(reason))
        self.reason = reason

    @property
    def limit(self) -> str:
        return self.reason.limit or ""


def progress_attrs(context: SearchContext, progress: Progress) -> dict[str, Any]:
    """What an evaluation spent, as JSON user attributes (per-model calls included)."""
    return {
        TrialKey.ITEMS: progress.items_done,
        TrialKey.SCORE: progress.score,
        TrialKey.CALLS: progress.calls,
        TrialKey.CACHE_HITS: progress.cache_hits,
        TrialKey.TOKENS: progress.tokens,
        TrialKey.USD: progress.usd,
        TrialKey.USD_EQUIVALENT: progress.usd_equivalent,
        TrialKey.FAILED_ITEMS: progress.failed,
        TrialKey.COST_PER_QUERY: context.cost(progress),
        TrialKey.BY_MODEL: {m.model: m.model_dump(exclude={"model"}) for m in progress.by_model},
        TrialKey.PER_QUERY: None if progress.per_query is None else progress.per_query.model_dump(),
    }


class TrialRunner:
    """Evaluates trials of one run; identical configurations are evaluated once.

    Args:
        context: the run's settings and meters.
        state: the run's counters (cache savings, the streak of free trials).
        known: completed results by pipeline fingerprint, from storage (shared by the run).
    """

    def __init__(
        self,
        context: SearchContext,
        state: SearchState,
        known: dict[str, asyncio.Future[Outcome]],
    ) -> None:
        self.context = context
        self.state = state
        self.known = known

    def infeasible(self, concrete: Pipeline) -> tuple[str | None, int, int]:
        """Why the configuration's static estimate exceeds a per-query budget (or None),
        and the estimated calls and tokens per query."""
        cost = estimate(concrete, self.context.registry)
        options, budget = self.context.options, self.context.template.budget
        limits: list[tuple[str, int | None, int]] = [
            ("calls", budget.calls, cost.calls),
            ("tokens", budget.tokens, cost.tokens),
            ("calls", options.max_calls_per_query, cost.calls),
            ("tokens", options.max_tokens_per_query, cost.tokens),
        ]
        for name, limit, value in limits:
            if limit is not None and value > limit:
                reason = f"estimated {value} {name} per query > budget {limit}"
                return reason, cost.calls, cost.tokens
        return None, cost.calls, cost.tokens

    def _concrete(self, trial: optuna.Trial) -> Pipeline | None:
        trial.set_user_attr(TrialKey.WORKER, self.context.worker.attrs())
        trial.set_user_attr(TrialKey.HEARTBEAT, time.time())
        try:
            concrete = materialize(self.context.template, trial, self.context.registry)
        except (AssignmentError, SearchSpaceError, ValueError) as error:
            trial.set_user_attr(TrialKey.ERROR, str(error))
            logger.warning("trial %d: %s", trial.number, error)
            return None
        trial.set_user_attr(TrialKey.FINGERPRINT, concrete.fingerprint())
        pipeline = json.dumps(strip_spans(concrete), separators=(",", ":"))
        trial.set_user_attr(TrialKey.PIPELINE, pipeline)
        return concrete

    async def run(self, trial: optuna.Trial) -> Outcome:
        """The outcome of ``trial`` (raises :class:`Interrupted` when the budget ran out)."""
        concrete = self._concrete(trial)
        if concrete is None:
            return Outcome(TrialState.FAIL)
        reason, calls, tokens = self.infeasible(concrete)
        trial.set_user_attr(TrialKey.EST_CALLS, calls)
        trial.set_user_attr(TrialKey.EST_TOKENS, tokens)
        if reason is not None:
            trial.set_user_attr(TrialKey.INFEASIBLE, reason)
            self.state.free_streak += 1
            return Outcome(TrialState.PRUNED)
        fingerprint = concrete.fingerprint()
        earlier = self.known.get(fingerprint)
        if earlier is not None:
            outcome = await asyncio.shield(earlier)
            if outcome.state == TrialState.COMPLETE:
                trial.set_user_attr(TrialKey.DUPLICATE_OF, outcome.number)
                for key, value in outcome.results.items():
                    trial.set_user_attr(key, value)
                self.state.free_streak += 1
                return Outcome(TrialState.COMPLETE, outcome.values)
        return await self._first(trial, concrete, fingerprint)

    async def _first(self, trial: optuna.Trial, concrete: Pipeline, fingerprint: str) -> Outcome:
        """Evaluate a configuration not seen before; later duplicates wait for this result."""
        mine: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.known[fingerprint] = mine
        try:
            outcome = await self._evaluate(trial, concrete)
        except BaseException:
            mine.set_result(Outcome(TrialState.FAIL))
            self.known.pop(fingerprint, None)
            raise
        outcome.number = trial.number
        mine.set_result(outcome)
        if outcome.state != TrialState.COMPLETE:
            self.known.pop(fingerprint, None)
        self.state.free_streak = 0
        return outcome

    async def _evaluate(self, trial: optuna.Trial, concrete: Pipeline) -> Outcome:
        context = self.context
        screen = self.state.screen
        items = context.trial_items if screen is None else screened(context, screen)
        if screen is not None:
            trial.set_user_attr(TrialKey.SCREENED_ITEMS, len(items))
        judge = _Judge(context, trial)
        last, pruned = Progress(0, 0.0), False
        clock = _Clock.start(context)
        chunks = context.evaluator.evaluate_chunks(
            concrete, items, chunk_size=context.chunk, budget=context.meter
        )
        async with contextlib.aclosing(chunks):  # pruning stops the items in flight at once
            async for progress in chunks:
                last = progress
                if progress.stopped is not None:
                    break
                # a trial evaluated on all its items is a full result: never prune it
                if progress.items_done and judge.prune(progress, progress.items_done < len(items)):
                    pruned = True
                    break
        self.state.spent(last)
        for key, value in {**progress_attrs(context, last), **clock.attrs(context)}.items():
            trial.set_user_attr(key, value)
        scores = dict(last.scores)
        if screen is not None:  # the dropped items at their credit: comparable with the rest
            scores = {**screen.credit, **scores}
        trial.set_user_attr(TrialKey.SCORES, scores_json(scores))
        if last.stopped is not None:
            raise Interrupted(StopReason.exceeded(last.stopped))
        if pruned:
            return Outcome(TrialState.PRUNED)
        if not last.items_done:
            trial.set_user_attr(TrialKey.ERROR, "no dev item was evaluated")
            return Outcome(TrialState.FAIL)
        cost = context.cost(last)
        score = last.score if screen is None else screen.objective(dict(last.scores))
        trial.set_user_attr(TrialKey.SCORE, score)
        results: dict[str, Any] = {
            TrialKey.ITEMS: last.items_done,
            TrialKey.SCORE: score,
            TrialKey.COST_PER_QUERY: cost,
        }
        if screen is not None:
            results[TrialKey.SCREENED_SCORE] = last.score
        if last.per_query is not None:
            results[TrialKey.PER_QUERY] = last.per_query.model_dump()
        cap = context.options.max_mean_calls
        if cap is not None:
            mean_calls = last.calls_equivalent / last.items_done
            trial.set_user_attr(TrialKey.CONSTRAINT, mean_calls - cap)
            results[TrialKey.CONSTRAINT] = mean_calls - cap
        values = [score] if not context.pareto else [score, cost]
        return Outcome(TrialState.COMPLETE, values, trial.number, results)


def item_id(item: object, position: int) -> str:
    """The id a per-item score is keyed by (the item's ``id``, else its dev position)."""
    return str(getattr(item, "id", position))


def screened(context: SearchContext, screen: ItemScreen) -> list[object]:
    """The trial items the screen keeps, in dev order."""
    kept = set(screen.kept)
    return [
        item for position, item in enumerate(context.trial_items) if item_id(item, position) in kept
    ]


@dataclass
class _Clock:
    """Wall and CPU seconds of one evaluation (CPU: this process and the children that ended
    meanwhile; a long-lived sandbox runner counts when it ends), and the calls a bank
    answered meanwhile."""

    wall: float
    cpu: float
    bank_hits: int

    @classmethod
    def start(cls, context: SearchContext) -> _Clock:
        return cls(time.monotonic(), _cpu_seconds(), _bank_hits(context))

    def attrs(self, context: SearchContext) -> dict[str, Any]:
        return {
            TrialKey.WALL_S: round(time.monotonic() - self.wall, 2),
            TrialKey.CPU_S: round(_cpu_seconds() - self.cpu, 2),
            TrialKey.BANK_HITS: _bank_hits(context) - self.bank_hits,
        }


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _bank_hits(context: SearchContext) -> int:
    cache = getattr(context.evaluator, "cache", None)
    return int(getattr(cache, "bank_hits", 0) or 0)


class _Judge:
    """Decides, after each chunk, whether a running trial is pruned.

    ``paired`` (quality): every newly scored item is reported at its dev position, and
    Optuna's Wilcoxon pruner compares the trial with the best one on the shared items.
    ``paired`` (pareto): :func:`~archon.search.paired.dominated` against the complete trials.
    ``sha`` / ``hyperband``: the running mean at the number of items done.
    """

    def __init__(self, context: SearchContext, trial: optuna.Trial) -> None:
        self.context = context
        self.trial = trial
        self.positions = {item_id(item, i): i for i, item in enumerate(context.dev)}
        self.reported = 0
        self.rivals: list[Incumbent] | None = None

    def prune(self, progress: Progress, may_prune: bool) -> bool:
        options = self.context.options
        if options.pruner == "none":
            return False
        if self.context.pareto:
            return may_prune and options.pruner == "paired" and self._dominated(progress)
        if options.pruner == "paired":
            for key, score in progress.scores[self.reported :]:
                position = self.positions.get(key)
                if position is not None:
                    self.trial.report(score, step=position)
            self.reported = len(progress.scores)
        else:
            self.trial.report(progress.score, step=progress.items_done)
        if not may_prune:
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "steps missing in the best trial": by design
            pruned = self.trial.should_prune()
        if pruned and options.pruner == "paired":
            self.trial.set_user_attr(TrialKey.PRUNED_BY, "below the best trial (Wilcoxon)")
        return pruned

    def _dominated(self, progress: Progress) -> bool:
        if self.rivals is None:
            self.rivals = rivals(self.trial.study)
        reason = dominated(
            dict(progress.scores),
            self.context.cost(progress),
            self.rivals,
            p_threshold=self.context.options.p_threshold,
        )
        if reason is not None:
            self.trial.set_user_attr(TrialKey.PRUNED_BY, reason)
        return reason is not None


def rivals(study: optuna.Study) -> list[Incumbent]:
    """The complete, feasible, evaluated trials of ``study`` with their per-item scores."""
    found = []
    for trial in feasible(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))):
        scores = item_scores(trial.user_attrs)
        cost = as_float(trial.user_attrs.get(TrialKey.COST_PER_QUERY))
        if scores and cost is not None:
            found.append(Incumbent(trial.number, scores, cost))
    return found
