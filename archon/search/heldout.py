"""The final phase of a search: promote the best to the whole dev split, then test.

After the study loop, within the budget's test reserve (the whole search budget, not only its
dev part):

1. **Promotion** (quality objective, when trials saw only ``trial_items`` dev items, or only
   the items an item screen kept): the best
   ``promote_top`` trials and the baseline (trial 0) are re-evaluated on the *whole* dev
   split, and the best of them on that split becomes the winner. Successive halving prunes
   within the items every trial sees; promotion makes the final choice on more items than
   that, so a lucky configuration on 30 items does not win by noise.
2. **Held-out test**: the winner (pareto: the best ``test_top`` of the front) and the baseline
   are evaluated on the test split, with their per-item scores kept, so the report gives the
   paired difference to trial 0 with a bootstrap confidence interval.
3. **Reference baselines** (``SearchOptions.baselines``): single samples of every model the
   winner uses and equal-cost repeated sampling of the best of them, on the test split
   (:mod:`archon.eval.baselines`).

Every result is a study user attribute (``dev_full.N``, ``test.N``, ``reference.NAME``), so a
resumed or concurrent search reuses it and ``archon search --report`` shows it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from archon.eval.baselines import equal_cost_samples, models_of, repeated_sampling, single_sample
from archon.ir import Pipeline
from archon.search.context import SearchContext, SearchState, emit
from archon.search.objective import EvalEvaluator, Progress
from archon.search.record import (
    FULL_DEV_PREFIX,
    REFERENCE_PREFIX,
    TEST_PREFIX,
    ResultKey,
    StopReason,
    StoredResult,
    TrialKey,
    numbered,
    numbered_key,
    scores_json,
)
from archon.search.report import (
    best_trials,
    cost_of,
    feasible,
    stored_results,
    winner_choice,
)
from archon.search.storage import test_results

logger = logging.getLogger(__name__)


def result_attrs(progress: Progress) -> dict[str, Any]:
    """A final-phase result as stored: score, items, cost and the per-item scores."""
    done = max(1, progress.items_done)
    return {
        ResultKey.SCORE: progress.score,
        ResultKey.ITEMS: progress.items_done,
        ResultKey.CALLS: progress.calls,
        ResultKey.CALLS_PER_ITEM: progress.calls_equivalent / done,
        ResultKey.SCORES: scores_json(progress.scores),
    }


async def _evaluate(
    context: SearchContext, state: SearchState, pipeline: Pipeline, items: Sequence[object]
) -> Progress | None:
    """``pipeline`` on all ``items`` against the whole search budget (None: it ran out)."""
    last = Progress(0, 0.0)
    chunks = context.evaluator.evaluate_chunks(
        pipeline, items, chunk_size=max(1, len(items)), budget=context.total
    )
    async with contextlib.aclosing(chunks):
        async for progress in chunks:
            last = progress
    state.spent(last)
    if last.stopped is not None:
        logger.warning("final evaluation of %s stopped: %s", pipeline.name, last.stopped)
        state.stop(StopReason.exceeded(last.stopped))
        return None
    return last


def _pipeline(trial: FrozenTrial) -> Pipeline | None:
    text = trial.user_attrs.get(TrialKey.PIPELINE)
    return Pipeline.model_validate_json(text) if isinstance(text, str) else None


def _unique(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """``trials`` without repeated concrete pipelines (first kept)."""
    seen: set[str] = set()
    unique = []
    for trial in trials:
        fingerprint = str(trial.user_attrs.get(TrialKey.FINGERPRINT))
        if fingerprint not in seen:
            seen.add(fingerprint)
            unique.append(trial)
    return unique


def _baseline(study: optuna.Study) -> list[FrozenTrial]:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [t for t in complete if t.user_attrs.get(TrialKey.BASELINE)][:1]


async def _final(
    context: SearchContext,
    state: SearchState,
    study: optuna.Study,
    trials: Sequence[FrozenTrial],
    items: Sequence[object],
    prefix: str,
) -> bool:
    """Evaluate each of ``trials`` on ``items`` once per concrete pipeline; store under
    ``prefix + number`` (results already stored, by any worker, are reused). False when the
    search budget ran out."""
    done = numbered(study.user_attrs, prefix)
    by_fingerprint = {
        str(study.trials[n].user_attrs.get(TrialKey.FINGERPRINT)): r
        for n, r in done.items()
        if n < len(study.trials)
    }
    for trial in trials:
        fingerprint = str(trial.user_attrs.get(TrialKey.FINGERPRINT))
        if trial.number in done:
            continue
        if fingerprint in by_fingerprint:
            study.set_user_attr(
                numbered_key(prefix, trial.number), dict(by_fingerprint[fingerprint])
            )
            continue
        pipeline = _pipeline(trial)
        if pipeline is None:
            continue
        promoting = prefix == FULL_DEV_PREFIX
        message = "whole dev split" if promoting else "held-out test split"
        kind = "promoting" if promoting else "testing"
        emit(context, kind, study, trial=trial.number, message=message)
        progress = await _evaluate(context, state, pipeline, items)
        if progress is None:
            return False
        by_fingerprint[fingerprint] = result_attrs(progress)
        study.set_user_attr(numbered_key(prefix, trial.number), by_fingerprint[fingerprint])
    return True


async def final_phase(context: SearchContext, state: SearchState, study: optuna.Study) -> None:
    """Promotion, held-out test, reference baselines, until the search budget runs out."""
    if await promote(context, state, study) and await test_phase(context, state, study):
        await reference_phase(context, state, study)


async def promote(context: SearchContext, state: SearchState, study: optuna.Study) -> bool:
    """Re-evaluate the best trials and the baseline on the whole dev split (see the module).
    False when the search budget ran out."""
    top = context.options.promote_top
    # screened trials were scored partly on credits: the winner is chosen on real scores
    every_item = len(context.trial_items) >= len(context.dev) and state.screen is None
    if context.pareto or top < 1 or every_item:
        return True
    complete = feasible(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    # among equal scores the cheaper configuration goes first: at equal quality, less compute
    ranked = sorted(complete, key=lambda t: (-t.values[0], cost_of(t), t.number))
    chosen = _unique(ranked[:top] + _baseline(study))
    return await _final(context, state, study, chosen, context.dev, FULL_DEV_PREFIX)


def test_candidates(context: SearchContext, study: optuna.Study) -> list[FrozenTrial]:
    """The trials re-evaluated on the test split: the winner(s), the best trial by score when
    the paired rule kept the baseline instead (so the report shows whether it was right),
    then the baseline."""
    count = max(1, context.options.test_top if context.pareto else 1)
    choice = None if context.pareto else winner_choice(study)
    challenger = [choice.challenger] if choice is not None and choice.challenger else []
    return _unique(best_trials(study)[:count] + challenger + _baseline(study))


async def test_phase(context: SearchContext, state: SearchState, study: optuna.Study) -> bool:
    """Evaluate the winner(s) and the baseline on the held-out test split. False when the
    search budget ran out."""
    if not context.test:
        return True
    chosen = test_candidates(context, study)
    return await _final(context, state, study, chosen, context.test, TEST_PREFIX)


def _winner(study: optuna.Study) -> tuple[Pipeline, float] | None:
    """The best trial's pipeline and its test calls per query."""
    best = best_trials(study)
    tested = test_results(study).get(best[0].number) if best else None
    pipeline = _pipeline(best[0]) if best else None
    calls = StoredResult.from_json(tested).calls_per_item if tested is not None else None
    if pipeline is None or calls is None:
        return None
    return pipeline, calls


async def reference_phase(context: SearchContext, state: SearchState, study: optuna.Study) -> None:
    """Single samples of the winner's models and equal-cost repeated sampling, on test."""
    winner = _winner(study) if context.options.baselines and context.test else None
    if winner is None:
        return
    pipeline, calls = winner
    stored = stored_results(study, REFERENCE_PREFIX)
    singles: list[tuple[float, str]] = []
    for order, model in enumerate(models_of(pipeline)):
        single = single_sample(pipeline, model)
        result = stored.get(single.name) or await _reference(context, state, study, single, order)
        if result is None:
            return
        singles.append((-(StoredResult.from_json(result).score or 0.0), model))
    if not singles:
        return
    best_model = min(singles)[1]  # highest score; the first model among equals
    evaluator = context.evaluator
    code = isinstance(evaluator, EvalEvaluator) and evaluator.metric_name == "code"
    voted = repeated_sampling(pipeline, best_model, equal_cost_samples(calls), code=code)
    if voted.name not in stored:
        await _reference(context, state, study, voted, len(singles))


async def _reference(
    context: SearchContext,
    state: SearchState,
    study: optuna.Study,
    pipeline: Pipeline,
    order: int,
) -> dict[str, Any] | None:
    emit(context, "testing", study, message=f"baseline {pipeline.name}")
    progress = await _evaluate(context, state, pipeline, context.test)
    if progress is None:
        return None
    result = {**result_attrs(progress), ResultKey.ORDER: order}
    study.set_user_attr(REFERENCE_PREFIX + pipeline.name, result)
    return result
