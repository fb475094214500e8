"""The search loop: baseline, infeasible configurations, budgets, pruning, pareto, grid, resume."""

from __future__ import annotations

import asyncio
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from archon.compiler.structure import default_assignment
from archon.eval import EvalConfig
from archon.eval.items import Dataset
from archon.ir import Pipeline
from archon.layers.registry import Registry
from archon.runtime import CallCache
from archon.search import (
    SearchBudget,
    SearchConfigError,
    SearchEvent,
    SearchOptions,
    StudyMismatch,
    search,
    search_async,
)
from archon.search.driver import active_params
from archon.search.simulator import (
    Landscape,
    SimulatedEvaluator,
    arithmetic_items,
    simulated_client,
)
from archon.search.space import encode_params

from .helpers import DISCRETE, compile_text, run_search, sim_runtime

optuna.logging.set_verbosity(optuna.logging.WARNING)


def sqlite(tmp_path: Path, name: str = "study") -> str:
    return f"sqlite:///{tmp_path / name}.db"


def load(storage: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


def simulated(
    template: Pipeline, registry: Registry, seed: int = 1, noise: bool = True
) -> SimulatedEvaluator:
    return SimulatedEvaluator(Landscape.random(template, seed).quality, registry, noise=noise)


def test_baseline_is_trial_zero_and_a_rerun_resumes(
    full: Pipeline, registry: Registry, tmp_path: Path
) -> None:
    storage = sqlite(tmp_path)
    first = run_search(
        full, simulated(full, registry), registry, storage=storage, budget=SearchBudget(trials=4)
    )
    assert first.new_trials == 4
    study = load(storage, "full")
    zero = study.trials[0]
    assert zero.user_attrs["baseline"] is True
    defaults = active_params(full, default_assignment(full), registry)
    assert zero.params == encode_params(full, defaults)
    second = run_search(
        full, simulated(full, registry), registry, storage=storage, budget=SearchBudget(trials=7)
    )
    assert second.new_trials == 3
    study = load(storage, "full")
    assert len(study.trials) == 7
    assert sum(bool(t.user_attrs.get("baseline")) for t in study.trials) == 1
    assert second.baseline is not None and second.baseline.number == 0


def test_infeasible_configurations_make_no_model_call(registry: Registry) -> None:
    template = compile_text(
        'models { a = "sim/a" } pipeline p { budget { calls <= 4 }'
        " generate(models = [a], samples = int(3, 6)) }",
        registry,
    )
    evaluator, client = sim_runtime(registry)
    result = run_search(
        template,
        evaluator,
        registry,
        options=SearchOptions(max_calls_per_query=2),
        budget=SearchBudget(trials=6),
    )
    assert client.calls == 0
    assert result.report.counts() == {"INFEASIBLE": 6}
    reasons = [t.infeasible or "" for t in result.report.trials]
    assert all(r.startswith("estimated") and "calls per query > budget" in r for r in reasons)
    # the template's own budget (calls <= 4) rejects 5 and 6 samples first
    assert any("> budget 4" in r for r in reasons) or all(
        t.params["generate_1.samples"] <= 4 for t in result.report.trials
    )
    assert result.best == ()


def test_only_feasible_configurations_are_evaluated(
    generate_template: Pipeline, registry: Registry
) -> None:
    evaluator, client = sim_runtime(registry)
    result = run_search(
        generate_template,
        evaluator,
        registry,
        dev=4,
        test=0,
        options=SearchOptions(max_calls_per_query=2, sampler="random", pruner="none"),
        budget=SearchBudget(trials=12),
    )
    trials = result.report.trials
    infeasible = [t for t in trials if t.infeasible]
    feasible = [t for t in trials if not t.infeasible]
    assert infeasible and feasible
    assert all(t.params["generate_1.samples"] > 2 for t in infeasible)
    assert all(t.dev_items == 0 for t in infeasible)
    # each feasible trial made samples calls per item; nothing else was called
    expected = sum(t.params["generate_1.samples"] * t.dev_items for t in feasible)
    assert client.calls == expected == result.spent.calls


@pytest.mark.parametrize("parallel", [1, 3])
def test_total_calls_budget_is_never_exceeded(
    generate_template: Pipeline, registry: Registry, tmp_path: Path, parallel: int
) -> None:
    evaluator, client = sim_runtime(registry, latency_s=0.001)
    storage = sqlite(tmp_path)
    result = run_search(
        generate_template,
        evaluator,
        registry,
        storage=storage,
        options=SearchOptions(parallel_trials=parallel, sampler="random", seed=parallel),
        budget=SearchBudget(trials=200, calls=50),
    )
    assert client.calls <= 50
    assert result.spent.calls == client.calls
    assert result.stopped == "calls budget"
    study = load(storage, "gen")
    cut = [t for t in study.trials if t.state == TrialState.FAIL]
    # a trial cut short by the budget is failed and re-enqueued, never judged on part of dev
    assert all("budget" in t.user_attrs["stopped"] for t in cut)
    waiting = [t for t in study.trials if t.state == TrialState.WAITING]
    assert {t.user_attrs["retry_of"] for t in waiting} == {t.number for t in cut}


def test_seconds_budget_stops_cleanly(generate_template: Pipeline, registry: Registry) -> None:
    evaluator, _ = sim_runtime(registry, latency_s=0.02)
    result = run_search(generate_template, evaluator, registry, budget=SearchBudget(seconds=1.0))
    assert result.stopped == "seconds budget"
    assert result.seconds < 2.5
    assert result.report.counts().get("COMPLETE", 0) >= 1


def test_successive_halving_prunes_on_dev_chunks(full: Pipeline, registry: Registry) -> None:
    result = run_search(
        full,
        simulated(full, registry),
        registry,
        dev=27,
        options=SearchOptions(seed=2, chunk_size=3),
        budget=SearchBudget(trials=30),
    )
    pruned = [t for t in result.report.trials if t.state == "PRUNED" and not t.infeasible]
    assert pruned
    assert all(t.dev_items < 27 and t.dev_items % 3 == 0 for t in pruned)
    complete = [t for t in result.report.trials if t.state == "COMPLETE"]
    assert all(t.dev_items == 27 for t in complete)


def test_hyperband_pruner_runs(full: Pipeline, registry: Registry) -> None:
    result = run_search(
        full,
        simulated(full, registry),
        registry,
        dev=27,
        options=SearchOptions(seed=2, pruner="hyperband"),
        budget=SearchBudget(trials=20),
    )
    assert result.best and result.report.counts()["COMPLETE"] >= 2


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "random"])
def test_pareto_front_of_quality_and_calls(
    full: Pipeline, registry: Registry, sampler: str
) -> None:
    result = run_search(
        full,
        simulated(full, registry),
        registry,
        dev=9,
        options=SearchOptions(objective="pareto", sampler=sampler, seed=1, pruner="none"),  # type: ignore[arg-type]
        budget=SearchBudget(trials=20),
    )
    states = {t.state for t in result.report.trials if not t.infeasible}
    assert states == {"COMPLETE"}  # pruner none: every feasible trial is evaluated
    front = result.best
    assert front
    for trial in front:
        assert trial.values is not None and len(trial.values) == 2
        assert trial.values[1] == trial.estimated_calls  # simulator: calls per query = estimate
        dominated = any(
            o.values is not None
            and o.values[0] >= trial.values[0]
            and o.values[1] <= trial.values[1]
            and (o.values[0] > trial.values[0] or o.values[1] < trial.values[1])
            for o in result.report.trials
            if o.state == "COMPLETE"
        )
        assert not dominated
    qualities = [t.values[0] for t in front if t.values]
    assert qualities == sorted(qualities, reverse=True)


def test_grid_visits_each_configuration_once(discrete: Pipeline, registry: Registry) -> None:
    evaluator = simulated(discrete, registry)
    result = run_search(
        discrete,
        evaluator,
        registry,
        test=0,
        options=SearchOptions(sampler="grid", pruner="none"),
        budget=SearchBudget(trials=100),
    )
    assert result.stopped == "grid exhausted"
    # 2 models x 3 samples x (repeat 0, or repeat 1 with 2 temperatures) = 18
    assert len(evaluator.evaluations) == len(set(evaluator.evaluations)) == 18
    assert result.report.counts() == {"COMPLETE": 18}


def test_grid_refuses_a_continuous_range(full: Pipeline, registry: Registry) -> None:
    with pytest.raises(Exception, match="continuous range"):
        run_search(
            full,
            simulated(full, registry),
            registry,
            options=SearchOptions(sampler="grid"),
            budget=SearchBudget(trials=3),
        )


def test_identical_configurations_are_evaluated_once(
    discrete: Pipeline, registry: Registry
) -> None:
    evaluator = simulated(discrete, registry)
    result = run_search(
        discrete,
        evaluator,
        registry,
        test=0,
        options=SearchOptions(sampler="random", pruner="none", parallel_trials=3),
        budget=SearchBudget(trials=40),
    )
    assert len(evaluator.evaluations) == len(set(evaluator.evaluations))
    complete = [t for t in result.report.trials if t.state == "COMPLETE"]
    assert len(complete) == 40 > len(evaluator.evaluations)
    by_number = {t.number: t for t in complete}
    duplicates = [t for t in complete if t.duplicate_of is not None]
    assert len(duplicates) == 40 - len(evaluator.evaluations)
    for copy in duplicates:
        original = by_number[copy.duplicate_of]  # type: ignore[index]
        assert original.duplicate_of is None
        assert (copy.values, copy.dev_score, copy.dev_items) == (
            original.values,
            original.dev_score,
            original.dev_items,
        )
        assert copy.calls == 0


def test_changed_template_is_refused_unless_allowed(registry: Registry, tmp_path: Path) -> None:
    storage = sqlite(tmp_path)
    before = compile_text(DISCRETE, registry)
    run_search(
        before,
        simulated(before, registry),
        registry,
        storage=storage,
        study="s",
        budget=SearchBudget(trials=3),
    )
    after = compile_text(DISCRETE.replace("generate(", "g = generate("), registry)
    with pytest.raises(StudyMismatch) as caught:
        run_search(
            after,
            simulated(after, registry),
            registry,
            storage=storage,
            study="s",
            budget=SearchBudget(trials=5),
        )
    message = str(caught.value)
    assert "template changed" in message and "g.samples" in message
    assert "--allow-template-change" in message
    result = run_search(
        after,
        simulated(after, registry),
        registry,
        storage=storage,
        study="s",
        options=SearchOptions(allow_template_change=True),
        budget=SearchBudget(trials=5),
    )
    assert result.new_trials == 2
    history = load(storage, "s").user_attrs["template_history"]
    assert [h["fingerprint"] for h in history] == [before.fingerprint(), after.fingerprint()]


def test_other_objective_is_refused(discrete: Pipeline, registry: Registry, tmp_path: Path) -> None:
    storage = sqlite(tmp_path)
    run_search(
        discrete,
        simulated(discrete, registry),
        registry,
        storage=storage,
        budget=SearchBudget(trials=2),
    )
    with pytest.raises(StudyMismatch, match="another --study"):
        run_search(
            discrete,
            simulated(discrete, registry),
            registry,
            storage=storage,
            options=SearchOptions(objective="pareto"),
            budget=SearchBudget(trials=3),
        )


def test_best_and_baseline_are_reevaluated_on_test(full: Pipeline, registry: Registry) -> None:
    evaluator = simulated(full, registry)
    result = run_search(full, evaluator, registry, dev=9, test=6, budget=SearchBudget(trials=8))
    assert result.best and result.baseline is not None
    assert result.best[0].test_items == 6 and result.best[0].test_score is not None
    assert result.baseline.test_items == 6


def test_interrupt_fails_and_requeues_the_running_trial(
    generate_template: Pipeline, registry: Registry, tmp_path: Path
) -> None:
    storage = sqlite(tmp_path)
    evaluator, _ = sim_runtime(registry, latency_s=0.05)
    items = arithmetic_items(20)

    async def main() -> None:
        task = asyncio.create_task(
            search_async(
                generate_template,
                items[:10],
                items[10:],
                evaluator=evaluator,
                registry=registry,
                storage=storage,
                budget=SearchBudget(trials=50),
            )
        )
        await asyncio.sleep(0.6)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    study = load(storage, "gen")
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].user_attrs["stopped"] == "search interrupted"
    # waiting: the retry, and the largest-samples trial enqueued by the new study
    retry = [
        t for t in study.trials if t.state == TrialState.WAITING and "retry_of" in t.user_attrs
    ]
    assert [t.user_attrs["retry_of"] for t in retry] == [failed[0].number]
    assert retry[0].system_attrs["fixed_params"] == failed[0].params
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]


def test_events_and_cache_savings(
    generate_template: Pipeline, registry: Registry, tmp_path: Path
) -> None:
    cache = CallCache(tmp_path / "cache.sqlite")
    events: list[SearchEvent] = []
    first_eval, first_client = sim_runtime(registry, cache=cache)
    first = run_search(
        generate_template,
        first_eval,
        registry,
        study="a",
        options=SearchOptions(seed=5),
        budget=SearchBudget(trials=5),
        on_event=events.append,
    )
    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert kinds.count("trial_finished") == 5
    assert first.cache_hits == 0 or first.spent.calls > 0
    again_eval, again_client = sim_runtime(registry, cache=cache)
    again = run_search(
        generate_template,
        again_eval,
        registry,
        study="b",
        options=SearchOptions(seed=5),
        budget=SearchBudget(trials=5),
    )
    assert again_client.calls == 0 and again.spent.calls == 0
    # the second search answers from the cache every call the first made or reused
    assert again.cache_hits == first_client.calls + first.cache_hits
    assert first_client.calls > 0


def test_cmaes_and_unavailable_samplers(full: Pipeline, registry: Registry) -> None:
    pytest.importorskip("cmaes")
    result = run_search(
        full,
        simulated(full, registry),
        registry,
        options=SearchOptions(sampler="cmaes"),
        budget=SearchBudget(trials=6),
    )
    assert result.best
    with pytest.raises(SearchConfigError, match="one objective"):
        run_search(
            full,
            simulated(full, registry),
            registry,
            options=SearchOptions(sampler="cmaes", objective="pareto"),
            budget=SearchBudget(trials=2),
        )


def test_gp_sampler_needs_torch(full: Pipeline, registry: Registry) -> None:
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch installed")
    with pytest.raises(SearchConfigError, match="pip install torch scipy"):
        run_search(
            full,
            simulated(full, registry),
            registry,
            options=SearchOptions(sampler="gp"),
            budget=SearchBudget(trials=2),
        )


def test_a_search_needs_a_limit(full: Pipeline, registry: Registry) -> None:
    with pytest.raises(Exception, match="needs a limit"):
        run_search(full, simulated(full, registry), registry, budget=SearchBudget())


def test_public_search_scores_with_the_dataset_metric(
    generate_template: Pipeline, registry: Registry, tmp_path: Path
) -> None:
    # the simulated model is right more often at higher temperature: something to find
    client = simulated_client(lambda request: 0.2 + 0.7 * (request.temperature or 0.0))
    dataset = Dataset(name="arith", items=arithmetic_items(40, seed=2), metric="exact_match")
    result = search(
        generate_template,
        dataset,
        EvalConfig.of(client=client),
        registry=registry,
        storage=sqlite(tmp_path),
        options=SearchOptions(seed=0, parallel_trials=2),
        budget=SearchBudget(trials=12, calls=600),
    )
    assert client.calls <= 600 and result.spent.calls == client.calls
    best, baseline = result.best[0], result.baseline
    assert baseline is not None and baseline.params["generate_1.temperature"] == 0.0
    assert best.quality is not None and baseline.quality is not None
    assert best.quality > baseline.quality
    assert best.test_score is not None and best.test_items
    assert best.params["generate_1.temperature"] > 0.3


STAGED = """
models { a = "sim/a" }
pipeline staged {
  gen = generate(models = [a], samples = 3, temperature = 0.7, max_tokens = 32)
  first = consensus() <- gen
  optional exit_if(when = "agreement", threshold = float(0.3, 1.0))
  more = generate(models = [a], samples = 3, temperature = 0.7, max_tokens = 32)
  consensus() <- gen, more
}
"""


def test_search_chooses_stages_and_reports_calls_per_query(registry: Registry) -> None:
    template = compile_text(STAGED, registry)
    evaluator, _ = sim_runtime(registry, accuracy=0.8)
    result = run_search(
        template, evaluator, registry, options=SearchOptions(seed=3), budget=SearchBudget(trials=6)
    )
    complete = [t for t in result.report.trials if t.state == "COMPLETE"]
    assert complete
    assert {"exit_if_1.enabled", "exit_if_1.threshold"} <= set(result.report.trials[0].params)
    for trial in complete:
        calls = trial.per_query["calls"]
        assert 3 <= calls["median"] <= calls["max"] <= 6
        exited = trial.per_query["exited"]
        gate = trial.params["exit_if_1.enabled"]
        assert exited == 0 or gate  # only a present gate stops a query
        if exited == trial.dev_items:  # every query stopped after the first stage
            assert calls["max"] == 3
    assert any(t.per_query["exited"] for t in complete)
