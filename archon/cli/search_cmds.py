"""``archon search`` and ``archon search-report``: architecture search over a template's holes.

Argument parsing and printing only; the work is done by :func:`archon.search.search`. This is
the one place that writes the winner back as ``.pipe`` text (search itself never imports the
DSL).
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
    stderr,
    stdout,
    usage_error,
    write_output,
)
from archon.cli.eval_cmds import load_dataset_or_exit
from archon.cli.session import (
    bank_line,
    check_connection,
    check_model_path,
    load_template,
    make_client,
    open_cache,
    open_otel_run,
    run_env,
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
    SearchConfigError,
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
from archon.search.record import TrialKey
from archon.search.report import Estimate
from archon.search.storage import check_storage_url

if TYPE_CHECKING:  # the `otel` extra is optional
    from archon.observability.otel import OtelSink


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


class ProgressMode(StrEnum):
    auto = "auto"
    live = "live"
    lines = "lines"


class Pruner(StrEnum):
    paired = "paired"
    sha = "sha"
    hyperband = "hyperband"
    none = "none"


class Winner(StrEnum):
    paired = "paired"
    best = "best"


def register(app: typer.Typer) -> None:
    """Add ``search`` and ``search-report`` to ``app``."""
    app.command("search")(search_command)
    app.command("search-report")(search_report)


# --- display --------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _value(value: Any) -> str:
    """A parameter value as JSON; floats with 6 significant digits (best.json has them all)."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return json.dumps(value, ensure_ascii=False)


def _params_text(params: dict[str, Any], baseline: dict[str, Any] | None = None) -> str:
    """Every parameter in full, one per line; with ``baseline``, only those that differ from
    it (a hole the baseline sets and this trial does not shows as ``unset``)."""
    if baseline is None:
        return "\n".join(f"{k}={_value(v)}" for k, v in params.items()) or "-"
    keys = list(params) + [k for k in baseline if k not in params]
    lines = [
        f"{k}={_value(params[k])}" if k in params else f"{k} unset"
        for k in keys
        if params.get(k, _UNSET) != baseline.get(k, _UNSET)
    ]
    return "\n".join(lines) or "(same as baseline)"


_UNSET = object()


def trials_table(report: StudyReport, top: int) -> Table:
    """The top trials of a study as a rich table.

    The baseline row shows every parameter in full; the other rows only the parameters whose
    value differs from the baseline's (all of them in full when the study has no baseline).
    The baseline is added as a last row when it is not among the top trials.
    """
    pareto = report.objective == "pareto"
    front = {t.number for t in report.best}
    baseline = report.baseline
    reference = dict(baseline.params) if baseline is not None else None
    table = Table(title=f"study '{report.study_name}': top {top} of {len(report.trials)} trials")
    for column in ("#", "dev", "test", f"{report.cost_unit}/query", "est. calls"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column(
        "params" if reference is None else "params (vs baseline)", overflow="fold", ratio=1
    )
    rows: list[TrialSummary] = ranked(report, top)
    if baseline is not None and all(t.number != baseline.number for t in rows):
        rows.append(baseline)
    for i, trial in enumerate(rows):
        mark = ("*" if trial.number in front else " ") if pareto else ""
        label = f"{trial.number}{mark}" + (" (baseline)" if trial.baseline else "")
        own = dict(trial.params)
        table.add_row(
            label,
            _fmt(trial.quality),
            _fmt(trial.test_score),
            _fmt(trial.cost_per_query, 2),
            "-" if trial.estimated_calls is None else str(trial.estimated_calls),
            _params_text(own, None if trial.baseline else reference),
            end_section=i < len(rows) - 1,
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
    # cache and bank hits count: the configuration needs those calls whoever answers them
    parts = [
        f"{model} {(float(usage.get('calls', 0)) + float(usage.get('cache_hits', 0))) / items:.1f}"
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


def _estimate(value: Estimate | None) -> str:
    return "-" if value is None else value.text()


def _shrinkage(report: StudyReport) -> list[str]:
    """The winner's and the baseline's score on the dev items it was chosen on, on the whole
    dev split and on test, each with a 95% CI: how much the winner's score shrinks."""
    rows = report.shrinkage()
    if not rows:
        return []
    cells = [
        (
            f"{row.label} (trial {row.number})",
            _estimate(row.dev),
            _estimate(row.whole_dev),
            _estimate(row.test),
        )
        for row in rows
    ]
    header = ("score, 95% CI", "trial dev items", "whole dev split", "test")
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(4)]
    return [
        "  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)).rstrip()
        for cell in [header, *cells]
    ]


def _comparison(report: StudyReport) -> list[str]:
    """The baseline, the best trial(s), their paired test differences and the references."""
    pareto = report.objective == "pareto"
    lines = []
    if report.baseline is not None:
        lines.append(_trial_line("baseline", report.baseline, pareto))
    lines += [_trial_line("best", trial, pareto) for trial in report.best[:3]]
    if report.winner_note:
        lines.append(f"winner: {report.winner_note}")
    lines += _shrinkage(report)
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


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class _StoredTrials:
    """User attributes of a study's trials, read from its storage while the search runs (the
    progress events carry the trial number only). Any failure reads as no attributes."""

    def __init__(self, storage: str, study: str) -> None:
        self.storage, self.study = storage, study
        self.backend: Any = None
        self.study_id: int | None = None

    def __call__(self, number: int) -> Mapping[str, Any]:
        try:
            if self.backend is None:
                from archon.search.storage import open_storage

                self.backend = open_storage(self.storage)
                self.study_id = self.backend.get_study_id_from_name(self.study)
            trial_id = self.backend.get_trial_id_from_study_id_trial_number(self.study_id, number)
            return dict(self.backend.get_trial(trial_id).user_attrs)
        except Exception:  # a progress line never stops a search
            return {}


class _Lines:
    """Plain progress lines, one per event, each flushed at once: for logs, files and pipes
    (``--progress lines``, or ``auto`` when the output is not a terminal).

    Args:
        console: where the lines go.
        attrs: a finished trial's stored user attributes by number (calls, items, cache and
            bank hits, wall time, why it was pruned); None or ``{}``: the line says less.
    """

    def __init__(
        self, console: Console, attrs: Callable[[int], Mapping[str, Any]] | None = None
    ) -> None:
        self.console = console
        self.attrs = attrs
        self.scores: dict[int, float] = {}

    def __call__(self, event: SearchEvent) -> None:
        line = self.line(event)
        if line is None:
            return
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        self.console.file.flush()

    def line(self, event: SearchEvent) -> str | None:
        """The line for ``event`` (None: nothing to say)."""
        number = event.trial
        if event.kind == "started":
            target = "" if event.trials_target is None else f" of {event.trials_target}"
            return f"search started: {event.message}; {event.trials_done}{target} trials done"
        if event.kind == "trial_started":
            return f"trial {number} started"
        if event.kind == "trial_finished" and number is not None:
            return self._finished(event, number)
        if event.kind == "promoting":
            return f"promoting trial {number} to the {event.message or 'whole dev split'}"
        if event.kind == "testing":
            if number is None:
                return f"testing {event.message}"
            return f"testing trial {number} on the {event.message or 'held-out test split'}"
        if event.kind == "screened":
            return f"item screen: {event.message}"
        if event.kind == "finished":
            spent = event.spent
            return (
                f"search finished ({event.message}): {event.trials_done} trials done; spent"
                f" {spent.calls:,} calls, {spent.tokens:,} tokens, ${spent.usd:.4f}"
            )
        return None

    def _finished(self, event: SearchEvent, number: int) -> str:
        attrs: Mapping[str, Any] = getattr(event, "attrs", None) or (
            self.attrs(number) if self.attrs is not None else {}
        )
        state = event.state or "?"
        if state == "COMPLETE" and event.value:
            self.scores[number] = event.value[0]
            head = f"trial {number} COMPLETE score {event.value[0]:.3f}"
            if len(event.value) > 1:
                head += f" cost {event.value[1]:.2f}/query"
        elif state == "PRUNED":
            items, score = _number(attrs.get(TrialKey.ITEMS)), _number(attrs.get(TrialKey.SCORE))
            head = f"trial {number} PRUNED"
            head += "" if items is None else f" at {items:.0f} item" + "s" * (items != 1)
            head += "" if score is None else f" score {score:.3f}"
            why = attrs.get(TrialKey.PRUNED_BY)
            head += f" ({why})" if isinstance(why, str) and why else ""
        else:
            head = f"trial {number} {state}"
            why = (
                attrs.get(TrialKey.INFEASIBLE)
                or attrs.get(TrialKey.ERROR)
                or attrs.get(TrialKey.STOPPED)
            )
            head += f": {why}" if isinstance(why, str) and why else ""
        duplicate = _number(attrs.get(TrialKey.DUPLICATE_OF))
        if duplicate is not None:
            head += f" (same pipeline as trial {duplicate:.0f}: result reused)"
        return head + _usage(attrs) + self._best(event)

    def _best(self, event: SearchEvent) -> str:
        if event.best is None:
            return ""
        target = "" if event.trials_target is None else f"/{event.trials_target}"
        holders = [n for n, score in self.scores.items() if score == event.best]
        which = f" (trial {min(holders)})" if holders else ""
        return f"; best so far {event.best:.3f}{which} [{event.trials_done}{target} done]"


def _usage(attrs: Mapping[str, Any]) -> str:
    """`` calls 1,234 (cache 900) 3.2 calls/q 41.0 s`` from a trial's stored attributes."""
    calls = _number(attrs.get(TrialKey.CALLS))
    if calls is None:
        return ""
    cache = _number(attrs.get(TrialKey.CACHE_HITS)) or 0.0
    bank = _number(attrs.get(TrialKey.BANK_HITS))
    hits = f"cache {cache:,.0f}" + ("" if bank is None else f", bank {bank:,.0f}")
    text = f" calls {calls:,.0f} ({hits})"
    items = _number(attrs.get(TrialKey.ITEMS))
    per_query = attrs.get(TrialKey.PER_QUERY)
    mean = per_query.get("calls", {}).get("mean") if isinstance(per_query, dict) else None
    if isinstance(mean, int | float):
        text += f" {mean:.1f} calls/q"
    elif items:
        text += f" {(calls + cache) / items:.1f} calls/q"
    wall, cpu = _number(attrs.get(TrialKey.WALL_S)), _number(attrs.get(TrialKey.CPU_S))
    text += "" if wall is None else f" {wall:.1f} s"
    text += "" if cpu is None else f" (cpu {cpu:.1f} s)"
    return text


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
    progress: ProgressMode = ProgressMode.auto


def _command_line() -> str:
    """The command that is running, as a shell line (what reproduces the search)."""
    return shlex.join(["archon", *sys.argv[1:]])


def _write_best(result: SearchResult, out: Path) -> list[Path]:
    best = result.best[0] if result.best else None
    pipeline = best.pipeline() if best is not None else None
    if best is None or pipeline is None:
        return []
    header = (
        f"# Best architecture of study '{result.report.study_name}' (trial {best.number}):"
        f" dev {_fmt(best.quality)}, test {_fmt(best.test_score)}\n"
        + (f"# Winner: {result.report.winner_note}\n" if result.report.winner_note else "")
        + f"# Written by: {_command_line()}\n"
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
        "winner_rule": result.report.winner_note,
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
    seed: int,
    connection: opt.ConnectionFlags,
    spans: OtelSink | None = None,
) -> tuple[EvalConfig | None, Evaluator[Any] | None]:
    """How trials are scored: a seeded synthetic landscape, or the models through ``EvalConfig``."""
    if simulate is not None:
        from archon.search.simulator import Landscape, SimulatedEvaluator

        landscape = Landscape.random(template, seed=simulate)
        return None, SimulatedEvaluator(landscape.quality, registry, seed=simulate)
    client = make_client(template, connection)
    env = run_env(client, connection, cache, registry=registry, seed=seed, trace=spans)
    return EvalConfig(env=env, metric=metric), None


@dataclass(frozen=True)
class StrategyFlags(opt.FlagGroup):
    """How ``archon search`` samples, prunes, promotes and picks its winner
    (:class:`~archon.search.SearchOptions`)."""

    objective: Annotated[Objective, typer.Option(help="quality, or pareto (quality vs cost).")] = (
        Objective.quality
    )
    cost: Annotated[Cost, typer.Option(help="Cost of the pareto objective, per query.")] = (
        Cost.calls
    )
    sampler: Annotated[Sampler, typer.Option(help="Optuna sampler.")] = Sampler.tpe
    pruner: Annotated[
        Pruner,
        typer.Option(
            help="paired: prune a trial whose per-item scores are significantly below the best"
            " trial's on the same items (Wilcoxon; pareto: below a trial costing no more);"
            " sha/hyperband: running means (quality only); none."
        ),
    ] = Pruner.paired
    p_threshold: Annotated[
        float, typer.Option(help="One-sided p-value below which the paired pruner prunes.")
    ] = 0.1
    winner: Annotated[
        Winner,
        typer.Option(
            help="paired: the best trial replaces the template's defaults only when it is"
            " significantly better on the whole dev split, paired by item (Wilcoxon,"
            " --p-threshold); best: the highest score wins."
        ),
    ] = Winner.paired
    screen_items: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="Once N trials saw every dev item, later trials skip the items all N scored"
            " the same on (credited with that score; promotion uses every item).",
        ),
    ] = None
    max_mean_calls: Annotated[
        float | None,
        typer.Option(
            help="Constraint: a configuration whose measured mean calls per query exceed this"
            " is infeasible (never the winner), not penalised."
        ),
    ] = None
    max_calls_per_query: Annotated[
        int | None, typer.Option(help="Reject configurations estimated above this.")
    ] = None
    parallel_trials: Annotated[int, typer.Option(help="Trials evaluated at once.")] = 1
    chunk_size: Annotated[int | None, typer.Option(help="Dev items per pruning step.")] = None
    trial_items: Annotated[
        int | None,
        typer.Option(
            help="Dev items each trial sees (default: all); the best are then promoted to"
            " the whole dev split."
        ),
    ] = None
    promote_top: Annotated[
        int, typer.Option(help="Best trials re-evaluated on the whole dev split.")
    ] = 3
    baselines: Annotated[
        bool | None,
        typer.Option(
            "--baselines/--no-baselines",
            help="Also test single samples of each model and equal-cost majority vote"
            " (default: on, off with --simulate).",
        ),
    ] = None
    allow_template_change: Annotated[
        bool, typer.Option(help="Continue a study whose template changed (recorded).")
    ] = False

    def options(self, seed: int, *, simulated: bool) -> SearchOptions:
        """The validated :class:`SearchOptions` (a setting no search can use: exit 2)."""
        options = SearchOptions(
            objective=self.objective.value,
            cost=self.cost.value,
            sampler=self.sampler.value,
            pruner=self.pruner.value,
            p_threshold=self.p_threshold,
            winner=self.winner.value,
            screen_after=self.screen_items,
            max_mean_calls=self.max_mean_calls,
            seed=seed,
            parallel_trials=self.parallel_trials,
            chunk_size=self.chunk_size,
            max_calls_per_query=self.max_calls_per_query,
            allow_template_change=self.allow_template_change,
            trial_items=self.trial_items,
            promote_top=self.promote_top,
            baselines=not simulated if self.baselines is None else self.baselines,
        )
        try:
            options.validate()
        except SearchConfigError as error:
            usage_error(str(error))
        return options


@dataclass(frozen=True)
class StudyFlags(opt.FlagGroup):
    """Where the study lives (``--report`` prints a stored one instead of searching)."""

    storage: Annotated[
        str | None,
        typer.Option(
            help="sqlite:///f.db, postgresql://..., journal:f.log (default: next to the template)."
        ),
    ] = None
    study: Annotated[str | None, typer.Option(help="Study name (default: the pipeline name).")] = (
        None
    )
    report: Annotated[
        str | None,
        typer.Option(help="Print the table of stored study REPORT (with --storage) and exit."),
    ] = None


@dataclass(frozen=True)
class OutputFlags(opt.FlagGroup):
    """What ``archon search`` writes and prints."""

    out: Annotated[
        Path | None, typer.Option(help="Best architecture .pipe (and .json params).")
    ] = None
    plots: Annotated[
        Path | None, typer.Option(help="Folder for plots (default: next to --out).")
    ] = None
    plot_format: Annotated[str, typer.Option(help="png, html or png,html.")] = "png"
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Do not draw plots.")] = False
    top: Annotated[
        int,
        typer.Option(
            help="Rows in the final table (the baseline row shows every parameter in full, the"
            " others only those that differ from the baseline)."
        ),
    ] = 10
    progress: Annotated[
        ProgressMode,
        typer.Option(
            help="live: one updating status line (terminals); lines: a plain line per trial"
            " started and finished, promotion and test, flushed at once (logs, files); auto:"
            " live on a terminal, else lines (with --json the lines go to stderr).",
        ),
    ] = ProgressMode.auto
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False


@opt.grouped
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
    *,
    strategy: StrategyFlags,
    study: StudyFlags,
    budget: Annotated[opt.BudgetFlags, opt.use("calls", "usd", "seconds")],
    metric: opt.Metric = None,
    seed: opt.Seed = 0,
    simulate: Annotated[
        int | None,
        typer.Option(help="Score with a seeded synthetic landscape instead of models (try-out)."),
    ] = None,
    otel: opt.Otel = False,
    output: OutputFlags,
    cache: opt.CacheFlags,
    connection: opt.ConnectionFlags,
) -> None:
    """Search a template's holes on a dataset's dev split; write the best as a concrete .pipe.

    The --budget-* totals cover the whole search, test re-evaluation included (default
    without them: 20 trials); --seed seeds the sampler too. Rerunning the same command
    resumes the study. Exit codes: 0 ok, 1 diagnostics, 2 usage error, 3 runtime failure (or
    no configuration completed).
    """
    _check_numbers(limit=limit, trials=trials, parallel_trials=strategy.parallel_trials)
    _check_numbers(top=output.top, max_calls_per_query=strategy.max_calls_per_query)
    _check_numbers(chunk_size=strategy.chunk_size)
    search_budget = _search_budget(trials, budget)
    _check_storage(study.storage)
    check_connection(connection)
    if study.report is not None:
        _report_only(study.report or study.study, study.storage, template, output)
        return
    registry, pipeline, data, template = _inputs(template, dataset)
    storage = study.storage or default_storage_url(template)
    out = output.out or template.with_name(template.stem + ".best.pipe")
    _check_outputs(out, connection.model_path)
    options = strategy.options(seed, simulated=simulate is not None)
    origin = {"pipeline": pipeline.name, "dataset": data.name}
    call_cache = open_cache(cache, origin=origin)
    settings = _Settings(
        registry, options, search_budget, storage, study.study, limit, output.progress
    )
    spans = open_otel_run(otel, "search", pipeline) if simulate is None else None
    evaluation = _evaluation(
        pipeline,
        simulate=simulate,
        metric=metric,
        registry=registry,
        cache=call_cache,
        seed=seed,
        connection=connection,
        spans=spans,
    )
    console = stdout()
    try:
        result = _execute(
            pipeline, data, evaluation, settings, console, call_cache, quiet=output.as_json
        )
    finally:
        if spans is not None:
            spans.close()
    _finish(result, out, output, storage, console, call_cache)


def _search_budget(trials: int | None, flags: opt.BudgetFlags) -> SearchBudget:
    """``--trials`` and the ``--budget-*`` totals (none given: 20 trials)."""
    limits = flags.items()
    for name, value in limits.items():
        check_positive(value, f"--budget-{name}")
    if trials is None and not limits:
        trials = 20
    return SearchBudget(trials=trials, calls=flags.calls, usd=flags.usd, seconds=flags.seconds)


def _finish(
    result: SearchResult,
    out: Path,
    output: OutputFlags,
    storage: str,
    console: Console,
    cache: CallCache | None,
) -> None:
    """Write the best ``.pipe`` and the plots, print the result; exit 3 without a best."""
    written = _write_best(result, out)
    if not output.no_plots:
        folder = output.plots or out.parent
        written += _plots(storage, result.report.study_name, folder, output.plot_format)
    if output.as_json:
        from archon.search.report import to_json

        typer.echo(to_json(result.report, output.top))
    else:
        _print_result(console, result, output.top, written)
    answered = bank_line(cache)
    if answered is not None:
        typer.echo(answered, err=True)
    if not result.best:
        raise typer.Exit(EXIT_RUNTIME)


def _report_only(
    study: str | None, storage: str | None, template: Path | None, output: OutputFlags
) -> None:
    if storage is None and template is not None:
        storage = default_storage_url(template)
    if storage is None:
        usage_error("--report needs --storage URL (or the template the study sits next to)")
    _print_report(storage, study, output.top, output.as_json)


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
    mode = settings.progress
    if mode == ProgressMode.auto:
        mode = ProgressMode.live if console.is_terminal and not quiet else ProgressMode.lines
    display: _Display | _Lines | None = None
    if mode == ProgressMode.lines:
        attrs = _StoredTrials(settings.storage, settings.study or pipeline.name)
        display = _Lines(stderr() if quiet else console, attrs)
    elif not quiet:
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

    if not isinstance(display, _Display):
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


def _print_table(console: Console, report: StudyReport, top: int) -> None:
    """The table at the terminal's width, or up to 200 columns in a file or pipe (where
    nothing is gained by wrapping parameter values at 80)."""
    if not console.is_terminal:
        console.width = max(console.width, 200)
    console.print(trials_table(report, top))


def _print_result(console: Console, result: SearchResult, top: int, written: list[Path]) -> None:
    _print_table(console, result.report, top)
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
    _print_table(console, report, top)
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
