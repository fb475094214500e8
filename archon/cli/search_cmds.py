"""``archon search`` and ``archon search-report``: architecture search over a template's holes.

Argument parsing and printing only; the work is done by :func:`archon.search.search`. This is
the one place that writes the winner back as ``.pipe`` text (search itself never imports the
DSL).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from archon.cli import options as opt
from archon.cli.common import (
    EXIT_RUNTIME,
    check_output_path,
    check_positive,
    stdout,
    usage_error,
    write_output,
)
from archon.cli.eval_cmds import load_dataset_or_exit
from archon.cli.session import (
    Connection,
    bank_line,
    check_model_path,
    load_template,
    make_client,
    open_cache,
)
from archon.compiler.emit import pipeline_to_pipe
from archon.errors import ArchonError
from archon.eval import Dataset, EvalConfig
from archon.eval.stats import Difference
from archon.ir import Pipeline
from archon.layers import default_registry
from archon.layers.registry import Registry
from archon.runtime import CallCache
from archon.search import (
    SearchBudget,
    SearchEvent,
    SearchOptions,
    SearchResult,
    StudyReport,
    TrialSummary,
    default_storage_url,
    load_report,
    ranked,
    search,
)
from archon.search.objective import Evaluator
from archon.search.storage import check_storage_url


class Objective(StrEnum):
    quality = "quality"
    pareto = "pareto"


class Cost(StrEnum):
    calls = "calls"
    usd = "usd"


class Sampler(StrEnum):
    tpe = "tpe"
    random = "random"
    grid = "grid"
    gp = "gp"
    cmaes = "cmaes"
    nsga2 = "nsga2"


class Pruner(StrEnum):
    sha = "sha"
    hyperband = "hyperband"
    none = "none"


def register(app: typer.Typer) -> None:
    """Add ``search`` and ``search-report`` to ``app``."""
    app.command("search")(search_command)
    app.command("search-report")(search_report)


# --- display --------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _params_text(params: dict[str, Any], width: int = 70) -> str:
    text = ", ".join(f"{k}={json.dumps(v)}" for k, v in params.items())
    return text if len(text) <= width else text[: width - 1] + "…"


def trials_table(report: StudyReport, top: int) -> Table:
    """The top trials of a study as a rich table."""
    pareto = report.objective == "pareto"
    front = {t.number for t in report.best}
    table = Table(title=f"study '{report.study_name}': top {top} of {len(report.trials)} trials")
    for column in ("#", "dev", "test", f"{report.cost_unit}/query", "est. calls", "params"):
        table.add_column(column, justify="left" if column == "params" else "right")
    rows: list[TrialSummary] = ranked(report, top)
    for trial in rows:
        mark = ("*" if trial.number in front else " ") if pareto else ""
        label = f"{trial.number}{mark}" + (" (baseline)" if trial.baseline else "")
        table.add_row(
            label,
            _fmt(trial.quality),
            _fmt(trial.test_score),
            _fmt(trial.cost_per_query, 2),
            "-" if trial.estimated_calls is None else str(trial.estimated_calls),
            _params_text(dict(trial.params)),
        )
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(report.counts().items()))
    table.caption = counts + (" (* = on the Pareto front)" if pareto else "")
    return table


def _trial_line(label: str, trial: TrialSummary, pareto: bool) -> str:
    full = (
        f" (whole dev split {_fmt(trial.full_dev_score)} on {trial.full_dev_items})"
        if trial.full_dev_score is not None
        else ""
    )
    cost = f"  {_fmt(trial.cost_per_query, 2)}" if pareto else ""
    return (
        f"{label:<8} (trial {trial.number}): dev {_fmt(trial.quality)}{full}"
        f"  test {_fmt(trial.test_score)}{cost}"
    )


def _difference(label: str, diff: Difference | None) -> str:
    if diff is None:
        return f"{label}: -"
    verdict = "excludes 0" if diff.excludes_zero else "includes 0: not significant"
    return (
        f"{label}: {100 * diff.diff:+.1f} points, 95% CI [{100 * diff.low:+.1f},"
        f" {100 * diff.high:+.1f}] over {diff.items} paired test items ({verdict})"
    )


def _per_model(trial: TrialSummary) -> str | None:
    items = max(1, trial.dev_items)
    parts = [
        f"{model} {float(usage.get('calls', 0)) / items:.1f}"
        for model, usage in trial.by_model.items()
        if isinstance(usage, dict)
    ]
    return ("calls/query by model (dev): " + ", ".join(parts)) if parts else None


def _spread(trial: TrialSummary) -> str | None:
    """Mean, median and maximum calls and tokens per dev query, and the early exits."""
    calls, tokens = trial.per_query.get("calls"), trial.per_query.get("tokens")
    if not isinstance(calls, dict) or not isinstance(tokens, dict):
        return None
    exited = trial.per_query.get("exited") or 0
    return (
        f"per dev query: calls mean {calls.get('mean', 0):.2f}, median {calls.get('median', 0):g},"
        f" max {calls.get('max', 0):g}; tokens mean {tokens.get('mean', 0):,.0f}, median"
        f" {tokens.get('median', 0):,.0f}, max {tokens.get('max', 0):,.0f};"
        f" {exited} of {trial.dev_items} stopped early"
    )


def _comparison(report: StudyReport) -> list[str]:
    """The baseline, the best trial(s), their paired test differences and the references."""
    pareto = report.objective == "pareto"
    lines = []
    if report.baseline is not None:
        lines.append(_trial_line("baseline", report.baseline, pareto))
    lines += [_trial_line("best", trial, pareto) for trial in report.best[:3]]
    if report.best and report.baseline is not None and report.best[0].test_scores:
        lines.append(_difference("best - baseline on test", report.test_difference()))
    per_model = _per_model(report.best[0]) if report.best else None
    if per_model is not None:
        lines.append(per_model)
    spread = _spread(report.best[0]) if report.best else None
    if spread is not None:
        lines.append(spread)
    for ref, diff in report.reference_differences():
        calls = "-" if ref.calls_per_item is None else f"{ref.calls_per_item:.1f}"
        lines.append(f"reference {ref.name}: test {_fmt(ref.score)} at {calls} calls/query")
        lines.append(_difference(f"  best - {ref.name}", diff))
    return lines


class _Display:
    """A live line: trials done, best so far, spend."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live: Live | None = None
        self.last = SearchEvent(kind="started")

    def render(self) -> Text:
        e = self.last
        target = f"/{e.trials_target}" if e.trials_target is not None else ""
        spent = e.spent
        return Text(
            f"trials {e.trials_done}{target}  best {_fmt(e.best)}  spent {spent.calls} calls,"
            f" {spent.tokens:,} tokens, ${spent.usd:.4f}  {e.message}"
        )

    def __call__(self, event: SearchEvent) -> None:
        self.last = event
        if event.kind == "trial_finished" and event.state != "COMPLETE":
            self.last = SearchEvent(
                **{**event.__dict__, "message": f"#{event.trial} {event.state}"}
            )
        elif event.kind == "trial_finished":
            self.last = SearchEvent(
                **{
                    **event.__dict__,
                    "message": f"#{event.trial} {_fmt(event.value[0] if event.value else None)}",
                }
            )
        if self.live is not None:
            self.live.update(self.render())


# --- search ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    """What ``archon search`` passes to :func:`archon.search.search` besides the evaluation."""

    registry: Registry
    options: SearchOptions
    budget: SearchBudget
    storage: str
    study: str | None
    limit: int | None


def _write_best(result: SearchResult, out: Path) -> list[Path]:
    best = result.best[0] if result.best else None
    pipeline = best.pipeline() if best is not None else None
    if best is None or pipeline is None:
        return []
    header = (
        f"# Best architecture of study '{result.report.study_name}' (trial {best.number}):"
        f" dev {_fmt(best.quality)}, test {_fmt(best.test_score)}\n"
    )
    write_output(out, header + pipeline_to_pipe(pipeline), "--out")
    params = out.with_suffix(".json")
    data = {
        "params": dict(best.params),
        "study": result.report.study_name,
        "trial": best.number,
        "values": list(best.values or ()),
        "dev_score": best.quality,
        "test_score": best.test_score,
    }
    write_output(params, json.dumps(data, indent=2) + "\n", "--out (its .json params)")
    return [out, params]


def _evaluation(
    template: Pipeline,
    *,
    simulate: int | None,
    metric: str | None,
    registry: Registry,
    cache: CallCache | None,
    model_path: Path | None,
    seed: int,
    connection: Connection,
) -> tuple[EvalConfig | None, Evaluator[Any] | None]:
    """How trials are scored: a seeded synthetic landscape, or the models through ``EvalConfig``."""
    if simulate is not None:
        from archon.search.simulator import Landscape, SimulatedEvaluator

        landscape = Landscape.random(template, seed=simulate)
        return None, SimulatedEvaluator(landscape.quality, registry, seed=simulate)
    config = EvalConfig(
        client=make_client(template, model_path, connection),
        limits=connection.limits(),
        cache=cache,
        metric=metric,
        registry=registry,
        seed=seed,
    )
    return config, None


def search_command(
    template: Annotated[
        Path | None, typer.Argument(help="The .pipe template whose holes are searched.")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Dataset name (e.g. bigbench/arithmetic) or file.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="At most N dev and N test items.")] = None,
    trials: Annotated[
        int | None, typer.Option(help="Trials the study should hold (a rerun resumes).")
    ] = None,
    objective: Annotated[
        Objective, typer.Option(help="quality, or pareto (quality vs cost).")
    ] = Objective.quality,
    cost: Annotated[
        Cost, typer.Option(help="Cost of the pareto objective, per query.")
    ] = Cost.calls,
    sampler: Annotated[Sampler, typer.Option(help="Optuna sampler.")] = Sampler.tpe,
    pruner: Annotated[
        Pruner, typer.Option(help="Pruner over dev chunks (quality only).")
    ] = Pruner.sha,
    storage: Annotated[
        str | None,
        typer.Option(
            help="sqlite:///f.db, postgresql://..., journal:f.log (default: next to the template)."
        ),
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Study name (default: the pipeline name).")
    ] = None,
    parallel_trials: Annotated[int, typer.Option(help="Trials evaluated at once.")] = 1,
    budget_calls: Annotated[
        int | None, typer.Option(help="Total model calls (cache hits free).")
    ] = None,
    budget_usd: Annotated[float | None, typer.Option(help="Total dollars.")] = None,
    budget_seconds: Annotated[float | None, typer.Option(help="Total wall time.")] = None,
    max_calls_per_query: Annotated[
        int | None, typer.Option(help="Reject configurations estimated above this.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Best architecture .pipe (and .json params).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Sampler and run seed.")] = 0,
    metric: Annotated[str | None, typer.Option(help="Metric (default: the dataset's).")] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Dev items per pruning step.")] = None,
    trial_items: Annotated[
        int | None,
        typer.Option(
            help="Dev items each trial sees (default: all); the best are then promoted to"
            " the whole dev split."
        ),
    ] = None,
    promote_top: Annotated[
        int, typer.Option(help="Best trials re-evaluated on the whole dev split.")
    ] = 3,
    baselines: Annotated[
        bool | None,
        typer.Option(
            "--baselines/--no-baselines",
            help="Also test single samples of each model and equal-cost majority vote"
            " (default: on, off with --simulate).",
        ),
    ] = None,
    allow_template_change: Annotated[
        bool, typer.Option(help="Continue a study whose template changed (recorded).")
    ] = False,
    plots: Annotated[
        Path | None, typer.Option(help="Folder for plots (default: next to --out).")
    ] = None,
    plot_format: Annotated[str, typer.Option(help="png, html or png,html.")] = "png",
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Do not draw plots.")] = False,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not use the call cache.")
    ] = False,
    bank: opt.Banks = None,
    model_path: Annotated[
        Path | None, typer.Option(help="GGUF file for every local/... model.")
    ] = None,
    simulate: Annotated[
        int | None,
        typer.Option(help="Score with a seeded synthetic landscape instead of models (try-out)."),
    ] = None,
    report: Annotated[
        str | None,
        typer.Option(help="Print the table of stored study REPORT (with --storage) and exit."),
    ] = None,
    top: Annotated[int, typer.Option(help="Rows in the final table.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    allow_key: opt.AllowKey = None,
    timeout: opt.Timeout = None,
    retries: opt.Retries = None,
) -> None:
    """Search a template's holes on a dataset's dev split; write the best as a concrete .pipe.

    Rerunning the same command resumes the study. Exit codes: 0 ok, 1 diagnostics, 2 usage
    error, 3 runtime failure (or no configuration completed).
    """
    _check_numbers(limit=limit, trials=trials, parallel_trials=parallel_trials, top=top)
    _check_numbers(max_calls_per_query=max_calls_per_query, chunk_size=chunk_size)
    for value, flag in ((budget_calls, "calls"), (budget_usd, "usd"), (budget_seconds, "seconds")):
        check_positive(value, f"--budget-{flag}")
    _check_storage(storage)
    connection = Connection.from_options(allow_key, timeout, retries)
    if report is not None:
        _report_only(report or study, storage, template, top, as_json)
        return
    registry, pipeline, data, template = _inputs(template, dataset)
    if trials is None and all(v is None for v in (budget_calls, budget_usd, budget_seconds)):
        trials = 20
    storage = storage or default_storage_url(template)
    out = out or template.with_name(template.stem + ".best.pipe")
    _check_outputs(out, model_path)
    options = SearchOptions(
        objective=objective.value,
        cost=cost.value,
        sampler=sampler.value,
        pruner=pruner.value,
        seed=seed,
        parallel_trials=parallel_trials,
        chunk_size=chunk_size,
        max_calls_per_query=max_calls_per_query,
        allow_template_change=allow_template_change,
        trial_items=trial_items,
        promote_top=promote_top,
        baselines=simulate is None if baselines is None else baselines,
    )
    budget = SearchBudget(trials=trials, calls=budget_calls, usd=budget_usd, seconds=budget_seconds)
    cache = open_cache(
        no_cache, origin={"pipeline": pipeline.name, "dataset": data.name}, banks=bank
    )
    settings = _Settings(registry, options, budget, storage, study, limit)
    evaluation = _evaluation(
        pipeline,
        simulate=simulate,
        metric=metric,
        registry=registry,
        cache=cache,
        model_path=model_path,
        seed=seed,
        connection=connection,
    )
    console = stdout()
    result = _execute(pipeline, data, evaluation, settings, console, cache, quiet=as_json)
    written = _write_best(result, out)
    if not no_plots:
        written += _plots(storage, result.report.study_name, plots or out.parent, plot_format)
    if as_json:
        from archon.search.report import to_json

        typer.echo(to_json(result.report, top))
    else:
        _print_result(console, result, top, written)
    answered = bank_line(cache)
    if answered is not None:
        typer.echo(answered, err=True)
    if not result.best:
        raise typer.Exit(EXIT_RUNTIME)


def _report_only(
    study: str | None, storage: str | None, template: Path | None, top: int, as_json: bool
) -> None:
    if storage is None and template is not None:
        storage = default_storage_url(template)
    if storage is None:
        usage_error("--report needs --storage URL (or the template the study sits next to)")
    _print_report(storage, study, top, as_json)


def _inputs(template: Path | None, dataset: str | None) -> tuple[Registry, Pipeline, Dataset, Path]:
    if template is None:
        usage_error("give the .pipe template to search")
    if dataset is None:
        usage_error("give --dataset NAME or FILE")
    registry = default_registry()
    pipeline = load_template(template, registry)
    return registry, pipeline, load_dataset_or_exit(dataset), template


def _check_numbers(**values: int | None) -> None:
    """Usage error for a count below 1 (e.g. ``--limit -3``, which would slice from the end)."""
    for name, value in values.items():
        if value is not None and value < 1:
            usage_error(f"--{name.replace('_', '-')} must be at least 1, not {value}")


def _check_storage(storage: str | None) -> None:
    """Usage error for a storage URL that cannot name a study store."""
    if storage is not None:
        try:
            check_storage_url(storage)
        except ArchonError as error:
            usage_error(str(error))


def _check_outputs(out: Path, model_path: Path | None) -> None:
    """Every output path and the model file, checked before the first (paid) model call."""
    check_output_path(out, "--out")
    check_output_path(out.with_suffix(".json"), "--out (its .json params)")
    check_model_path(model_path)


def _execute(
    pipeline: Pipeline,
    data: Dataset,
    evaluation: tuple[EvalConfig | None, Evaluator[Any] | None],
    settings: _Settings,
    console: Console,
    cache: CallCache | None,
    *,
    quiet: bool,
) -> SearchResult:
    """Run the search; errors and Ctrl-C become exit code 3 with a line saying what to do."""
    logging.getLogger("optuna").setLevel(logging.WARNING)
    try:
        return _run(pipeline, data, evaluation, settings, console, quiet=quiet)
    except ArchonError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_RUNTIME) from error
    except KeyboardInterrupt:
        typer.echo(
            "interrupted: finished trials are saved and running ones re-enqueued;"
            " rerun the same command to resume",
            err=True,
        )
        raise typer.Exit(EXIT_RUNTIME) from None
    finally:
        if cache is not None:
            cache.close()


def _run(
    pipeline: Pipeline,
    data: Dataset,
    evaluation: tuple[EvalConfig | None, Evaluator[Any] | None],
    settings: _Settings,
    console: Console,
    *,
    quiet: bool,
) -> SearchResult:
    config, evaluator = evaluation
    display = _Display(console)

    def go() -> SearchResult:
        return search(
            pipeline,
            data,
            config,
            evaluator=evaluator,
            registry=settings.registry,
            storage=settings.storage,
            study=settings.study,
            options=settings.options,
            budget=settings.budget,
            limit=settings.limit,
            on_event=display,
            close_client=True,
        )

    if quiet:
        return go()
    with Live(display.render(), console=console, refresh_per_second=4, transient=True) as live:
        display.live = live
        return go()


def _plots(storage: str, study: str, folder: Path, formats: str) -> list[Path]:
    from archon.search.plots import save_study_plots

    wanted = tuple(f.strip() for f in formats.split(",") if f.strip())
    try:
        return save_study_plots(storage, study, folder, formats=wanted)
    except (ArchonError, ImportError, ValueError) as error:
        typer.echo(f"warning: plots not drawn: {error}", err=True)
        return []


def _print_result(console: Console, result: SearchResult, top: int, written: list[Path]) -> None:
    console.print(trials_table(result.report, top))
    for line in _comparison(result.report):
        console.print(line)
    spent = result.spent
    console.print(
        f"stopped: {result.stopped}; {result.new_trials} new trial(s); spent {spent.calls} calls,"
        f" {spent.tokens:,} tokens, ${spent.usd:.4f} in {result.seconds:.1f}s;"
        f" cache saved {result.cache_hits} calls (${result.usd_saved:.4f})"
    )
    if result.recovered:
        console.print(
            "failed and re-enqueued trials of dead workers: "
            + ", ".join(map(str, result.recovered))
        )
    for path in written:
        console.print(f"wrote {path}")
    console.print(f"study: {result.storage} (optuna-dashboard {result.storage})")


def _print_report(storage: str, study: str | None, top: int, as_json: bool) -> None:
    try:
        report = load_report(storage, study)
    except (ArchonError, KeyError, ValueError) as error:
        usage_error(str(error))
    if as_json:
        from archon.search.report import to_json

        typer.echo(to_json(report, top))
        return
    console = stdout()
    console.print(trials_table(report, top))
    for line in _comparison(report):
        console.print(line)


def search_report(
    study: Annotated[str | None, typer.Argument(help="Study name (default: the only one).")] = None,
    storage: Annotated[str, typer.Option(help="Storage URL of the study.")] = "",
    top: Annotated[int, typer.Option(help="Rows to show.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print a stored study's top trials, best configuration(s) and baseline."""
    if not storage:
        usage_error("give --storage URL (sqlite:///x.study.db, postgresql://..., journal:x.log)")
    _print_report(storage, study, top, as_json)
