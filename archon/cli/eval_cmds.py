"""``archon eval``: run a pipeline over a dataset and score it.

Argument parsing and printing only; the work is done by :func:`archon.eval.evaluate`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from archon.cli import options as opt
from archon.cli.common import (
    EXIT_RUNTIME,
    check_output_path,
    check_positive,
    stderr,
    stdout,
    usage_error,
)
from archon.cli.session import (
    bank_line,
    budget_of,
    check_connection,
    check_model_path,
    load_pipeline,
    make_client,
    open_cache,
    open_otel_run,
    run_env,
)
from archon.errors import ArchonError
from archon.eval import (
    FORMATS,
    NAMED,
    SPLITS,
    Dataset,
    DatasetError,
    EvalConfig,
    EvalResult,
    MetricOptions,
    RecordsError,
    Summary,
    UnknownMetric,
    Update,
    default_datasets,
    default_metrics,
    evaluate,
    load_dataset,
    select_split,
)
from archon.eval.splits import Split
from archon.eval.summary import Cost
from archon.ir import Pipeline
from archon.layers import default_registry
from archon.outputs import write_atomic
from archon.runtime import CallCache

if TYPE_CHECKING:
    from archon.observability.otel import OtelSink


def register(app: typer.Typer) -> None:
    """Add ``eval`` to the main app."""
    app.command("eval")(eval_command)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _running(summary: Summary) -> str:
    main = summary.accuracy if summary.accuracy is not None else summary.score
    label = "acc" if summary.accuracy is not None else "score"
    cost = summary.cost
    return f"{label} {_fmt(main)}  ${cost.usd:.4f}  {cost.calls_per_item:.1f} calls/q" + (
        f"  {summary.errors} failed" if summary.errors else ""
    )


def results_table(result: EvalResult) -> Table:
    """The end-of-run table: quality, then cost per query."""
    s, cost = result.summary, result.summary.cost
    table = Table(title=f"{result.pipeline} on {result.dataset} ({result.metric})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows: list[tuple[str, str]] = [
        (
            "items",
            f"{s.n}/{result.total}" + (f" ({result.resumed} resumed)" if result.resumed else ""),
        ),
        ("score", _fmt(s.score)),
        ("accuracy", _fmt(s.accuracy)),
    ]
    rows += [(f"pass@{k}", _fmt(v)) for k, v in s.pass_at]
    if s.coverage is not None:
        rows.append((f"coverage (any of {s.candidates_per_item:.1f} candidates)", _fmt(s.coverage)))
    if s.verifier_fpr is not None:
        rows.append((f"verifier false positives ({s.verifier_kept} kept)", _fmt(s.verifier_fpr)))
    rows += [
        ("failed items", str(s.errors)),
        ("calls / query", f"{cost.calls_per_item:.2f}"),
        *_spread_rows(cost),
        ("tokens in / query", f"{cost.tokens_in_per_item:.0f}"),
        ("tokens out / query", f"{cost.tokens_out_per_item:.0f}"),
        ("USD / query", f"{cost.usd_per_item:.6f}"),
        ("latency / query (s)", f"{cost.seconds_per_item:.2f}"),
        ("cache hits", str(cost.cache_hits)),
    ]
    if s.invalid:
        rows.append(("unscorable (invalid) items", str(s.invalid)))
    if cost.judge.calls:
        rows.append(("judge calls / USD", f"{cost.judge.calls} / {cost.judge.usd:.6f}"))
    items = max(1, cost.items)
    for usage in cost.by_model if len(cost.by_model) > 1 else ():
        tokens = (usage.prompt_tokens + usage.completion_tokens) / items
        rows.append(
            (
                f"  {usage.model}: calls / tokens per query",
                f"{usage.calls / items:.2f} / {tokens:.0f}",
            )
        )
    for name, value in rows:
        table.add_row(name, value)
    return table


def _spread_rows(cost: Cost) -> list[tuple[str, str]]:
    """Mean, median and maximum calls and tokens per query (cache hits counted)."""
    spread = cost.per_query
    if spread is None:
        return []
    calls, tokens = spread.calls, spread.tokens
    rows = [
        ("calls / query: mean, median, max", f"{calls.mean:.2f}, {calls.median:g}, {calls.max:g}"),
        (
            "tokens / query: mean, median, max",
            f"{tokens.mean:.0f}, {tokens.median:.0f}, {tokens.max:.0f}",
        ),
    ]
    if spread.exited:
        rows.append(("stopped at an early exit", f"{spread.exited} of {cost.items}"))
    return rows


@dataclass(frozen=True)
class DatasetFlags(opt.FlagGroup):
    """Which items ``archon eval`` scores: the dataset, its split and how a file is read."""

    dataset: Annotated[
        str,
        typer.Option(
            "--dataset", "-d", help=f"A dataset name ({', '.join(NAMED)}) or a file path."
        ),
    ]
    limit: Annotated[int | None, typer.Option(help="Evaluate only the first N items.")] = None
    split: Annotated[str, typer.Option(help="dev, test or all (seeded hash of item ids).")] = "all"
    split_seed: Annotated[int, typer.Option(help="Seed of the dev/test split.")] = 0
    input_field: Annotated[
        str | None, typer.Option(help="Question field of a custom JSONL file.")
    ] = None
    target_field: Annotated[
        str | None, typer.Option(help="Answer field of a custom JSONL file.")
    ] = None
    fmt: Annotated[
        str | None, typer.Option("--format", help=f"Dataset file format: {', '.join(FORMATS)}.")
    ] = None
    reference: Annotated[
        Path | None, typer.Option(help="Baseline answers (JSONL) for pairwise judging.")
    ] = None

    def check(self) -> None:
        """Usage errors for a format, split or limit no dataset can have."""
        if self.fmt is not None and self.fmt not in (formats := default_datasets().formats()):
            usage_error(f"--format must be one of {', '.join(formats)}")
        if self.split not in SPLITS:
            usage_error(f"--split must be one of {', '.join(SPLITS)}")
        check_positive(self.limit, "--limit", allow_zero=True)


@dataclass(frozen=True)
class MetricFlags(opt.FlagGroup):
    """How ``archon eval`` scores an answer."""

    metric: opt.Metric = None
    judge: Annotated[
        str | None, typer.Option(help="Judge model for judge_single / judge_pairwise.")
    ] = None
    parser_model: Annotated[
        str | None, typer.Option(help="Model that parses answers the rules cannot (MixEval).")
    ] = None


def _dataset(flags: DatasetFlags) -> Dataset:
    dataset = load_dataset_or_exit(
        flags.dataset,
        fmt=flags.fmt,
        input_field=flags.input_field,
        target_field=flags.target_field,
        reference=flags.reference,
    )
    chosen: Split = flags.split  # type: ignore[assignment]  # checked by DatasetFlags.check
    dataset = select_split(dataset, chosen, seed=flags.split_seed).head(flags.limit)
    if not dataset.items:
        usage_error(f"dataset {flags.dataset!r} has no items in split {flags.split!r}")
    return dataset


def load_dataset_or_exit(spec: str, **kwargs: Any) -> Dataset:
    """:func:`load_dataset`, with every way a file can be malformed as a usage error."""
    try:
        return load_dataset(spec, **kwargs)
    except DatasetError as error:
        usage_error(str(error))
    except RecursionError:
        usage_error(f"dataset {spec!r}: its JSON is nested too deeply")
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as error:
        # A loader met a record of a shape it does not expect.
        usage_error(f"dataset {spec!r} cannot be read: {type(error).__name__}: {error}")


async def _evaluate(
    pipeline: Pipeline, dataset: Dataset, config: EvalConfig, console: Console
) -> EvalResult:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[running]}"),
        console=console,
        transient=False,
    )
    task = progress.add_task(dataset.name, total=len(dataset), running="")

    def advance(update: Update) -> None:
        progress.update(task, completed=update.done, running=_running(update.summary))

    try:
        with progress:
            return await evaluate(pipeline, dataset, config, progress=advance)
    finally:
        await config.env.client.aclose()


def _metric_options(name: str, flags: MetricFlags) -> MetricOptions:
    """The metric options, checked by building the metric once (unknown names: exit 2)."""
    options = MetricOptions(judge_model=flags.judge, parser_model=flags.parser_model)
    try:
        default_metrics().build(name, options)
    except UnknownMetric as error:
        usage_error(str(error))
    return options


def _show(result: EvalResult, out: Path | None, as_json: bool) -> bool:
    """Print the summary and write it to ``--out``; False when ``--out`` failed."""
    report = result.report()
    written = _write_report(out, report)
    if as_json:
        typer.echo(json.dumps(report))
    else:
        stdout().print(results_table(result))
    return written


@opt.grouped
def eval_command(
    file: Annotated[Path, typer.Argument(help="The .pipe file to evaluate.")],
    *,
    data: DatasetFlags,
    concurrency: Annotated[int, typer.Option(help="Items in flight at once.")] = 8,
    params: opt.Params = None,
    out: Annotated[Path | None, typer.Option(help="Write the summary as JSON here.")] = None,
    records: Annotated[
        Path | None, typer.Option(help="Append one JSON record per item here as it finishes.")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip items already in --records.")
    ] = False,
    metric: MetricFlags,
    budget: Annotated[opt.BudgetFlags, opt.use(calls="--max-calls", usd="--max-usd")],
    cache: opt.CacheFlags,
    connection: opt.ConnectionFlags,
    seed: opt.Seed = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON instead of a table.")
    ] = False,
    otel: opt.Otel = False,
) -> None:
    """Evaluate a pipeline on a dataset: accuracy (or judge score), pass@k, coverage, cost.

    Exit codes: 0 done, 1 diagnostics, 2 usage error, 3 runtime failure, every item failed,
    or stopped by a --budget-* limit (rerun with --resume to finish).
    """
    data.check()
    if resume and records is None:
        usage_error("--resume needs --records FILE")
    if concurrency < 1:
        usage_error("--concurrency must be at least 1")
    run_budget = budget_of(budget)
    check_connection(connection)
    # Every path is checked before the first (paid) model call.
    check_output_path(out, "--out")
    check_output_path(records, "--records")
    check_model_path(connection.model_path)
    registry = default_registry()
    pipeline = load_pipeline(file, params, registry)
    dataset = _dataset(data)
    name = metric.metric or dataset.metric
    metric_options = _metric_options(name, metric)
    spans = open_otel_run(otel, "eval", pipeline)
    call_cache = open_cache(cache, origin={"pipeline": pipeline.name, "dataset": dataset.name})
    client = make_client(pipeline, connection)
    env = run_env(client, connection, call_cache, registry=registry, seed=seed, trace=spans)
    config = EvalConfig(
        env=env,
        metric=name,
        metric_options=metric_options,
        concurrency=concurrency,
        budget=run_budget,
        records_path=records,
        resume=resume,
    )
    result = _run(pipeline, dataset, config, spans)
    _finish(result, out, as_json, resumable=records is not None, cache=call_cache)


def _run(
    pipeline: Pipeline, dataset: Dataset, config: EvalConfig, spans: OtelSink | None
) -> EvalResult:
    """Evaluate; a failure is exit 3. The cache and the spans are closed either way."""
    failure: str | None = None
    try:
        return asyncio.run(_evaluate(pipeline, dataset, config, stderr()))
    except (RecordsError, ArchonError) as error:
        failure = str(error)
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_RUNTIME) from error
    finally:
        if config.env.cache is not None:
            config.env.cache.close()
        if spans is not None:
            spans.close(failure)


def _finish(
    result: EvalResult,
    out: Path | None,
    as_json: bool,
    *,
    resumable: bool,
    cache: CallCache | None,
) -> None:
    """Print and write the summary, then exit 3 if the run stopped early, ``--out`` failed or
    every item failed."""
    written = _show(result, out, as_json)
    answered = bank_line(cache)
    if answered is not None:
        typer.echo(answered, err=True)
    if result.stopped is not None:
        typer.echo(
            f"stopped after {result.summary.n}/{result.total} items: {result.stopped}"
            + (" (rerun with --resume to finish)" if resumable else ""),
            err=True,
        )
        raise typer.Exit(EXIT_RUNTIME)
    if not written:
        raise typer.Exit(EXIT_RUNTIME)
    if result.summary.n and result.summary.errors == result.summary.n:
        first = next((r.error for r in result.records if r.error), "")
        typer.echo(f"error: every item failed, e.g.: {first}", err=True)
        raise typer.Exit(EXIT_RUNTIME)


def _write_report(out: Path | None, report: dict[str, Any]) -> bool:
    """Write the summary to ``--out`` atomically; on failure say so (the summary is still
    printed) and return False."""
    if out is None:
        return True
    try:
        write_atomic(out, json.dumps(report, indent=2) + "\n")
    except OSError as error:
        typer.echo(f"error: --out {out} could not be written: {error.strerror or error}", err=True)
        return False
    return True
