"""The accuracy-against-compute front plot of a (simulated) study."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import optuna
import pytest

from archon.ir import Pipeline
from archon.layers.registry import Registry
from archon.search import SearchBudget, SearchOptions
from archon.search.plots import Point, front_data, non_dominated, save_plots
from archon.search.simulator import Landscape, SimulatedEvaluator
from archon.search.storage import open_storage

from .helpers import run_search


def _study(
    template: Pipeline,
    registry: Registry,
    tmp_path: Path,
    objective: Literal["quality", "pareto"],
    baselines: bool = False,
) -> optuna.Study:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    evaluator = SimulatedEvaluator(Landscape.random(template, 3).quality, registry)
    run_search(
        template,
        evaluator,
        registry,
        dev=12,
        test=8,
        storage=storage,
        study="s",
        options=SearchOptions(objective=objective, seed=1, baselines=baselines),
        budget=SearchBudget(trials=8),
    )
    return optuna.load_study(study_name="s", storage=open_storage(storage))


@pytest.mark.parametrize("objective", ["quality", "pareto"])
def test_front_plot_is_written_for_every_study(
    full: Pipeline,
    registry: Registry,
    tmp_path: Path,
    objective: Literal["quality", "pareto"],
) -> None:
    study = _study(full, registry, tmp_path, objective)
    written = save_plots(study, tmp_path / "plots", formats=("png",))
    front = tmp_path / "plots" / "s-front.png"
    assert front in written and front.stat().st_size > 0
    data = front_data(study)
    assert data is not None and data.baseline is not None
    assert data.baseline.label == "baseline (trial 0)"
    assert data.front and set(data.front) <= set(data.trials)


def test_front_plot_marks_the_reference_baselines(
    generate_template: Pipeline, registry: Registry, tmp_path: Path
) -> None:
    study = _study(generate_template, registry, tmp_path, "pareto", baselines=True)
    data = front_data(study)
    assert data is not None
    names = {point.label for point in data.references}
    assert names and all(name.endswith("(test)") for name in names)
    assert any(name.startswith("single") for name in names)


def test_non_dominated() -> None:
    points = [Point(1, 0.2, "a"), Point(2, 0.5, "b"), Point(3, 0.4, "c"), Point(2, 0.1, "d")]
    assert [p.label for p in non_dominated(points)] == ["a", "b"]
