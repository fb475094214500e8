"""TPE beats random search in expectation on a simulator whose quality is a known function.

The objective is evaluated analytically (``SimulatedEvaluator(noise=False)``: every chunk
scores exactly the landscape's quality), so the comparison is deterministic for fixed seeds
and fast. The assertion is on the mean over 12 seeds, with a margin.
"""

from __future__ import annotations

import statistics

import optuna

from archon.ir import Pipeline
from archon.layers.registry import Registry
from archon.search import SearchBudget, SearchOptions
from archon.search.simulator import Landscape, SimulatedEvaluator

from .helpers import run_search

optuna.logging.set_verbosity(optuna.logging.WARNING)

SEEDS = range(12)
TRIALS = 40


def best_quality(template: Pipeline, registry: Registry, sampler: str, seed: int) -> float:
    landscape = Landscape.random(template, seed)
    evaluator = SimulatedEvaluator(landscape.quality, registry, noise=False)
    result = run_search(
        template,
        evaluator,
        registry,
        dev=1,
        test=0,
        options=SearchOptions(
            sampler=sampler,  # type: ignore[arg-type]
            seed=seed,
            pruner="none",
            winner="best",  # the sampler is measured, not the winner rule
        ),
        budget=SearchBudget(trials=TRIALS),
    )
    assert result.best and result.best[0].quality is not None
    return result.best[0].quality


def test_tpe_beats_random_on_average(full: Pipeline, registry: Registry) -> None:
    tpe = [best_quality(full, registry, "tpe", seed) for seed in SEEDS]
    random = [best_quality(full, registry, "random", seed) for seed in SEEDS]
    assert statistics.mean(tpe) > statistics.mean(random) + 0.08, (tpe, random)
    assert sum(t >= r for t, r in zip(tpe, random, strict=True)) >= 9
