"""Search that transfers: promotion of the best to the whole dev split, the paired test
difference to trial 0, and the reference baselines on the test split."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from archon.eval import EvalConfig
from archon.eval.items import Dataset
from archon.ir import Pipeline
from archon.layers.registry import Registry
from archon.search import SearchBudget, SearchConfigError, SearchOptions, search
from archon.search.report import promoted_results
from archon.search.simulator import (
    Landscape,
    SimulatedEvaluator,
    arithmetic_items,
    simulated_client,
)

from .helpers import run_search

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_the_best_are_promoted_to_the_whole_dev_split(
    full: Pipeline, registry: Registry, tmp_path: Path
) -> None:
    evaluator = SimulatedEvaluator(Landscape.random(full, 4).quality, registry)
    options = SearchOptions(seed=1, trial_items=6, promote_top=2, pruner="none")
    result = run_search(
        full,
        evaluator,
        registry,
        dev=30,
        test=20,
        options=options,
        budget=SearchBudget(trials=8),
    )
    trials = result.report.trials
    assert all(t.dev_items <= 6 for t in trials if t.state == "COMPLETE")
    promoted = [t for t in trials if t.full_dev_score is not None]
    assert 1 <= len(promoted) <= 3 and all(t.full_dev_items == 30 for t in promoted)
    assert any(t.baseline for t in promoted)
    best = result.best[0]
    # the winner is chosen on the whole dev split, not on the 6 items every trial saw
    assert best.full_dev_score == max(t.full_dev_score or 0.0 for t in promoted)
    assert best.test_items == 20 and len(best.test_scores) == 20
    diff = result.report.test_difference()
    assert diff is not None and diff.items == 20 and diff.low <= diff.diff <= diff.high
    assert result.baseline is not None and result.baseline.test_items == 20


def test_without_trial_items_nothing_is_promoted(full: Pipeline, registry: Registry) -> None:
    evaluator = SimulatedEvaluator(Landscape.random(full, 4).quality, registry)
    calls_before = evaluator.calls
    result = run_search(full, evaluator, registry, budget=SearchBudget(trials=5))
    assert all(t.full_dev_score is None for t in result.report.trials)
    assert evaluator.calls > calls_before
    assert result.report.test_difference() is not None


def test_promotion_results_are_reused_by_a_resumed_search(
    full: Pipeline, registry: Registry, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path}/s.db"
    evaluator = SimulatedEvaluator(Landscape.random(full, 4).quality, registry)
    options = SearchOptions(seed=1, trial_items=6, promote_top=2, pruner="none")
    run_search(
        full,
        evaluator,
        registry,
        dev=30,
        storage=storage,
        options=options,
        budget=SearchBudget(trials=6),
    )
    study = optuna.load_study(study_name="full", storage=storage)
    first = promoted_results(study)
    again = SimulatedEvaluator(Landscape.random(full, 4).quality, registry)
    run_search(
        full,
        again,
        registry,
        dev=30,
        storage=storage,
        options=options,
        budget=SearchBudget(trials=6),
    )
    assert again.evaluations == []  # nothing new: trials, promotion and test all stored
    assert promoted_results(optuna.load_study(study_name="full", storage=storage)) == first


def test_bad_promotion_settings_are_refused(full: Pipeline, registry: Registry) -> None:
    evaluator = SimulatedEvaluator(Landscape.random(full, 4).quality, registry)
    with pytest.raises(SearchConfigError, match="trial_items"):
        run_search(
            full,
            evaluator,
            registry,
            options=SearchOptions(trial_items=0),
            budget=SearchBudget(trials=2),
        )


def test_reference_baselines_on_the_test_split(
    generate_template: Pipeline, registry: Registry
) -> None:
    client = simulated_client(lambda request: 0.2 + 0.7 * (request.temperature or 0.0))
    dataset = Dataset(name="arith", items=arithmetic_items(40, seed=2), metric="exact_match")
    result = search(
        generate_template,
        dataset,
        EvalConfig.of(client=client),
        registry=registry,
        options=SearchOptions(seed=0, baselines=True, test_reserve=0.5),
        budget=SearchBudget(trials=6, calls=2000),
    )
    refs = {ref.name: ref for ref in result.report.references}
    assert "single[sim/a]" in refs
    votes = [name for name in refs if name.startswith("vote")]
    assert len(votes) == 1 and votes[0].endswith("[sim/a]")
    single = refs["single[sim/a]"]
    assert single.items == len(result.best[0].test_scores) > 0
    assert single.calls_per_item == pytest.approx(1.0)
    differences = result.report.reference_differences()
    assert len(differences) == 2 and all(diff is not None for _, diff in differences)
    assert result.spent.calls == client.calls <= 2000
