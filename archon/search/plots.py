"""Pictures of a study: optimisation history, Pareto front, parameter importances.

PNG files through ``optuna.visualization.matplotlib`` (needs matplotlib); HTML files through
``optuna.visualization`` when plotly is installed. A plot that cannot be drawn (too few
completed trials, a constant parameter) is skipped with a log message, never an error.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from archon.search.storage import ATTR_COST, open_storage

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
    cost = str(study.user_attrs.get(ATTR_COST, "calls"))
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
    return written


def save_study_plots(
    storage: str, study_name: str, out_dir: str | Path, *, formats: Sequence[PlotFormat] = ("png",)
) -> list[Path]:
    """:func:`save_plots` for a stored study, by storage URL and name (for the CLI)."""
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    return save_plots(study, out_dir, formats=formats)
