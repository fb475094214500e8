"""``archon eval``: run a pipeline over a dataset and score it.

Argument parsing and printing only; the work is done by :func:`archon.eval.evaluate`.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

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
    check_model_path,
    connection_from_options,
    load_pipeline,
    make_client,
    open_cache,
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
from archon.eval.datasets import Format
from archon.eval.splits import Split
from archon.eval.summary import Cost
from archon.ir import Budget, Pipeline
from archon.layers import default_registry
from archon.outputs import write_atomic
from archon.runtime import RunEnv


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


def _dataset(
    spec: str,
    fmt: Format | None,
    input_field: str | None,
    target_field: str | None,
    reference: Path | None,
    split: str,
    split_seed: int,
    limit: int | None,
) -> Dataset:
    if split not in SPLITS:
        usage_error(f"--split must be one of {', '.join(SPLITS)}")
    dataset = load_dataset_or_exit(
        spec, fmt=fmt, input_field=input_field, target_field=target_field, reference=reference
    )
    chosen: Split = split
    dataset = select_split(dataset, chosen, seed=split_seed).head(limit)
    if not dataset.items:
        usage_error(f"dataset {spec!r} has no items in split {split!r}")
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


def _metric_options(name: str, judge: str | None, parser_model: str | None) -> MetricOptions:
    """The metric options, checked by building the metric once (unknown names: exit 2)."""
    options = MetricOptions(judge_model=judge, parser_model=parser_model)
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


def eval_command(
    file: Annotated[Path, typer.Argument(help="The .pipe file to evaluate.")],
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset", "-d", help=f"A dataset name ({', '.join(NAMED)}) or a file path."
        ),
    ],
    limit: Annotated[int | None, typer.Option(help="Evaluate only the first N items.")] = None,
    split: Annotated[str, typer.Option(help="dev, test or all (seeded hash of item ids).")] = "all",
    split_seed: Annotated[int, typer.Option(help="Seed of the dev/test split.")] = 0,
    concurrency: Annotated[int, typer.Option(help="Items in flight at once.")] = 8,
    params: opt.Params = None,
    out: Annotated[Path | None, typer.Option(help="Write the summary as JSON here.")] = None,
    records: Annotated[
        Path | None, typer.Option(help="Append one JSON record per item here as it finishes.")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip items already in --records.")
    ] = False,
    metric: Annotated[
        str | None, typer.Option(help="Metric name (default: the dataset's).")
    ] = None,
    input_field: Annotated[
        str | None, typer.Option(help="Question field of a custom JSONL file.")
    ] = None,
    target_field: Annotated[
        str | None, typer.Option(help="Answer field of a custom JSONL file.")
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help=f"Dataset file format: {', '.join(FORMATS)}.")
    ] = None,
    reference: Annotated[
        Path | None, typer.Option(help="Baseline answers (JSONL) for pairwise judging.")
    ] = None,
    judge: Annotated[
        str | None, typer.Option(help="Judge model for judge_single / judge_pairwise.")
    ] = None,
    parser_model: Annotated[
        str | None, typer.Option(help="Model that parses answers the rules cannot (MixEval).")
    ] = None,
    max_calls: Annotated[
        int | None, typer.Option(help="Stop cleanly after this many model calls in all.")
    ] = None,
    max_usd: Annotated[
        float | None, typer.Option(help="Stop cleanly after spending this many USD in all.")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not read or write the call cache.")
    ] = False,
    bank: opt.Banks = None,
    model_path: opt.ModelPath = None,
    seed: opt.Seed = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON instead of a table.")
    ] = False,
    allow_key: opt.AllowKey = None,
    timeout: opt.Timeout = None,
    retries: opt.Retries = None,
) -> None:
    """Evaluate a pipeline on a dataset: accuracy (or judge score), pass@k, coverage, cost.

    Exit codes: 0 done, 1 diagnostics, 2 usage error, 3 runtime failure, every item failed,
    or stopped by --max-calls/--max-usd (rerun with --resume to finish).
    """
    if fmt is not None and fmt not in (formats := default_datasets().formats()):
        usage_error(f"--format must be one of {', '.join(formats)}")
    if resume and records is None:
        usage_error("--resume needs --records FILE")
    if concurrency < 1:
        usage_error("--concurrency must be at least 1")
    check_positive(limit, "--limit", allow_zero=True)
    check_positive(max_calls, "--max-calls")
    check_positive(max_usd, "--max-usd")
    connection = connection_from_options(allow_key, timeout, retries)
    # Every path is checked before the first (paid) model call.
    check_output_path(out, "--out")
    check_output_path(records, "--records")
    check_model_path(model_path)
    registry = default_registry()
    pipeline = load_pipeline(file, params, registry)
    data = _dataset(dataset, fmt, input_field, target_field, reference, split, split_seed, limit)
    name = metric or data.metric
    metric_options = _metric_options(name, judge, parser_model)
    budget = Budget(calls=max_calls, usd=max_usd)
    cache = open_cache(
        no_cache, origin={"pipeline": pipeline.name, "dataset": data.name}, banks=bank
    )
    env = RunEnv(
        client=make_client(pipeline, model_path, connection),
        limits=connection.limits(),
        registry=registry,
        cache=cache,
        seed=seed,
    )
    config = EvalConfig(
        env=env,
        metric=name,
        metric_options=metric_options,
        concurrency=concurrency,
        budget=None if budget.is_empty() else budget,
        records_path=records,
        resume=resume,
    )
    try:
        result = asyncio.run(_evaluate(pipeline, data, config, stderr()))
    except (RecordsError, ArchonError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_RUNTIME) from error
    finally:
        if cache is not None:
            cache.close()
    written = _show(result, out, as_json)
    answered = bank_line(cache)
    if answered is not None:
        typer.echo(answered, err=True)
    if result.stopped is not None:
        typer.echo(
            f"stopped after {result.summary.n}/{result.total} items: {result.stopped}"
            + (" (rerun with --resume to finish)" if records is not None else ""),
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
