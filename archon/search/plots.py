"""Pictures of a study: optimisation history, Pareto front, parameter importances, and the
accuracy-against-compute front of every study (``front``).

PNG files through ``optuna.visualization.matplotlib`` (needs matplotlib); HTML files through
``optuna.visualization`` when plotly is installed. The ``front`` plot is drawn here (matplotlib
or plotly directly): dev score against cost per query of every completed trial, the
non-dominated trials connected as a line, the baseline trial and the reference baselines
(single samples, equal-cost vote; their *test* score at their calls per query) as labelled
markers. A plot that cannot be drawn (too few
completed trials, a constant parameter) is skipped with a log message, never an error.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from archon.search.record import REFERENCE_PREFIX, StoredResult, StudyKey, TrialKey, as_float
from archon.search.report import stored_results
from archon.search.storage import open_storage

logger = logging.getLogger(__name__)

PlotFormat = str  # "png" or "html"


def _quality(trial: FrozenTrial) -> float:
    return float(trial.values[0])


def _plots(study: optuna.Study) -> list[tuple[str, str, dict[str, Any]]]:
    """(file stem, optuna plot function name, keyword arguments) for this study."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(study.directions) == 1:
        plots: list[tuple[str, str, dict[str, Any]]] = [
            ("history", "plot_optimization_history", {})
        ]
        if len(complete) >= 2:
            plots.append(("importances", "plot_param_importances", {}))
        return plots
    cost = str(study.user_attrs.get(StudyKey.COST_UNIT, "calls"))
    quality: dict[str, Any] = {"target": _quality, "target_name": "quality"}
    plots = [
        ("history", "plot_optimization_history", quality),
        (
            "pareto",
            "plot_pareto_front",
            {"target_names": ["quality", f"{cost} per query"]},
        ),
    ]
    if len(complete) >= 2:
        plots.append(("importances", "plot_param_importances", quality))
    return plots


@dataclass(frozen=True)
class Point:
    """One marker of the front plot: ``x`` cost per query, ``y`` score."""

    x: float
    y: float
    label: str


@dataclass(frozen=True)
class Front:
    """What the ``front`` plot shows.

    Attributes:
        trials: every completed trial with a cost (label: its number).
        front: the non-dominated trials (higher score, lower cost), by cost.
        baseline: the baseline trial (None: none completed).
        references: the reference baselines on the test split (calls per query only).
        cost_unit: ``calls`` or ``usd``.
    """

    trials: tuple[Point, ...]
    front: tuple[Point, ...]
    baseline: Point | None
    references: tuple[Point, ...]
    cost_unit: str


def _cost(trial: FrozenTrial, pareto: bool) -> float | None:
    if pareto and len(trial.values) > 1:
        return float(trial.values[1])
    return as_float(trial.user_attrs.get(TrialKey.COST_PER_QUERY))


def non_dominated(points: Sequence[Point]) -> list[Point]:
    """The points no other point beats on both score (higher) and cost (lower), by cost."""
    front: list[Point] = []
    for point in sorted(points, key=lambda p: (p.x, -p.y)):
        if not front or point.y > front[-1].y:
            front.append(point)
    return front


def front_data(study: optuna.Study) -> Front | None:
    """The ``front`` plot's data (None: no completed trial has a cost)."""
    pareto = len(study.directions) > 1
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    points, baseline = [], None
    for trial in complete:
        cost = _cost(trial, pareto)
        if cost is None or not trial.values:
            continue
        point = Point(cost, float(trial.values[0]), str(trial.number))
        points.append(point)
        if trial.user_attrs.get(TrialKey.BASELINE) and baseline is None:
            baseline = Point(point.x, point.y, f"baseline (trial {trial.number})")
    if not points:
        return None
    unit = str(study.user_attrs.get(StudyKey.COST_UNIT, "calls"))
    references = []
    if unit == "calls":  # references record calls per query only
        for name, data in stored_results(study, REFERENCE_PREFIX).items():
            result = StoredResult.from_json(data)
            if result.score is not None and result.calls_per_item is not None:
                references.append(Point(result.calls_per_item, result.score, f"{name} (test)"))
    return Front(tuple(points), tuple(non_dominated(points)), baseline, tuple(references), unit)


def _front_png(data: Front, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    axes.scatter(
        [p.x for p in data.trials], [p.y for p in data.trials], s=18, alpha=0.45, label="trials"
    )
    axes.plot(
        [p.x for p in data.front],
        [p.y for p in data.front],
        "o-",
        color="tab:red",
        drawstyle="steps-post",
        label="front (non-dominated)",
    )
    for point in data.front:
        axes.annotate(point.label, (point.x, point.y), textcoords="offset points", xytext=(4, 4))
    marks = ([data.baseline] if data.baseline is not None else []) + list(data.references)
    for i, point in enumerate(marks):
        marker = "s" if point is data.baseline else "^D*vP"[i % 5]
        axes.scatter([point.x], [point.y], marker=marker, s=60, label=point.label, zorder=3)
        axes.annotate(point.label, (point.x, point.y), textcoords="offset points", xytext=(4, -12))
    axes.set_xlabel(f"{data.cost_unit} per query (mean)")
    axes.set_ylabel("score (trials: dev; references: test)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _front_html(data: Front, title: str, path: Path) -> None:
    go = importlib.import_module("plotly.graph_objects")  # optional: no stubs needed

    figure = go.Figure()
    figure.add_scatter(
        x=[p.x for p in data.trials],
        y=[p.y for p in data.trials],
        text=[f"trial {p.label}" for p in data.trials],
        mode="markers",
        name="trials",
        opacity=0.5,
    )
    figure.add_scatter(
        x=[p.x for p in data.front],
        y=[p.y for p in data.front],
        text=[f"trial {p.label}" for p in data.front],
        mode="lines+markers",
        line_shape="hv",
        name="front (non-dominated)",
    )
    marks = ([data.baseline] if data.baseline is not None else []) + list(data.references)
    for point in marks:
        figure.add_scatter(
            x=[point.x],
            y=[point.y],
            mode="markers+text",
            text=[point.label],
            textposition="bottom right",
            marker={"size": 11, "symbol": "square" if point is data.baseline else "diamond"},
            name=point.label,
        )
    figure.update_layout(
        title=title,
        xaxis_title=f"{data.cost_unit} per query (mean)",
        yaxis_title="score (trials: dev; references: test)",
    )
    figure.write_html(str(path))


def save_front(
    study: optuna.Study, out: Path, *, png: bool = True, html: bool = False
) -> list[Path]:
    """Write ``<study>-front.png`` / ``.html`` to ``out``: score against cost per query of every
    completed trial, the front, the baseline and the references. Returns the paths written."""
    data = front_data(study)
    if data is None:
        logger.info("plot front skipped: no completed trial with a cost")
        return []
    title = f"study '{study.study_name}': score against compute"
    written = []
    for wanted, suffix, draw in ((png, "png", _front_png), (html, "html", _front_html)):
        if not wanted:
            continue
        path = out / f"{study.study_name}-front.{suffix}"
        try:
            draw(data, title, path)
            written.append(path)
        except (ValueError, RuntimeError, OSError) as error:
            logger.info("plot front skipped: %s", error)
    return written


def _save_png(
    study: optuna.Study, function: Callable[..., Any], kwargs: dict[str, Any], path: Path
) -> None:
    import matplotlib.pyplot as plt

    axes = function(study, **kwargs)
    figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
    figure.set_size_inches(8, 5)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def save_plots(
    study: optuna.Study, out_dir: str | Path, *, formats: Sequence[PlotFormat] = ("png",)
) -> list[Path]:
    """Write the study's plots to ``out_dir`` as ``<study>-<plot>.<format>``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    want_png = "png" in formats and importlib.util.find_spec("matplotlib") is not None
    want_html = "html" in formats and importlib.util.find_spec("plotly") is not None
    if "png" in formats and not want_png:
        logger.warning("PNG plots need matplotlib: pip install matplotlib")
    if "html" in formats and not want_html:
        logger.warning("HTML plots need plotly: pip install plotly")
    for stem, name, kwargs in _plots(study):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if want_png:
                import optuna.visualization.matplotlib as mpl

                path = out / f"{study.study_name}-{stem}.png"
                try:
                    _save_png(study, getattr(mpl, name), kwargs, path)
                    written.append(path)
                except (ValueError, RuntimeError, ZeroDivisionError) as error:
                    logger.info("plot %s skipped: %s", stem, error)
            if want_html:
                import optuna.visualization as viz

                path = out / f"{study.study_name}-{stem}.html"
                try:
                    getattr(viz, name)(study, **kwargs).write_html(str(path))
                    written.append(path)
                except (ValueError, RuntimeError, ZeroDivisionError) as error:
                    logger.info("plot %s skipped: %s", stem, error)
    written += save_front(study, out, png=want_png, html=want_html)
    return written


def save_study_plots(
    storage: str, study_name: str, out_dir: str | Path, *, formats: Sequence[PlotFormat] = ("png",)
) -> list[Path]:
    """:func:`save_plots` for a stored study, by storage URL and name (for the CLI)."""
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    return save_plots(study, out_dir, formats=formats)
