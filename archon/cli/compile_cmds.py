"""``archon check | fmt | graph | kinds``: commands that need no model."""

from __future__ import annotations

import json
import shutil
import subprocess
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import typer

from archon.cli.common import (
    EXIT_DIAGNOSTICS,
    check_output_path,
    print_diagnostics,
    read_params,
    require_file,
    source_limits,
    stdout,
    usage_error,
    write_output,
)
from archon.cli.session import load_template
from archon.compiler import CompileResult, check_file
from archon.compiler.cost import CostRange, estimate, estimate_range
from archon.compiler.graph import to_dot, to_json, to_mermaid
from archon.compiler.load import decode
from archon.compiler.structure import AssignmentError, assign, holes, space_size
from archon.dsl.limits import SourceLimits, size_problem
from archon.dsl.printer import format_source
from archon.errors import DiagnosticError
from archon.errors import to_json as diagnostics_json
from archon.ir import Pipeline
from archon.layers import UnknownLayerKind, default_registry
from archon.layers.base import Layer
from archon.outputs import write_atomic


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


class GraphFormat(StrEnum):
    dot = "dot"
    mermaid = "mermaid"
    json = "json"


def register(app: typer.Typer) -> None:
    """Add the compile-time commands to ``app``."""
    app.command()(check)
    app.command()(fmt)
    app.command()(graph)
    app.command()(kinds)


# --- check ----------------------------------------------------------------------------------


def check(
    files: Annotated[list[Path], typer.Argument(help=".pipe files to check.")],
    format: Annotated[
        OutputFormat, typer.Option("--format", help="text or json.")
    ] = OutputFormat.text,
    pipeline: Annotated[
        str | None, typer.Option(help="Pipeline to check in a multi-pipeline file.")
    ] = None,
) -> None:
    """Parse and compile FILES: print every diagnostic, the cost estimate and the search space.

    Exit code 0 when no file has errors, 1 otherwise.
    """
    for path in files:
        require_file(path)
    registry = default_registry()
    limits = source_limits()
    reports = []
    failed = False
    for path in files:
        result = check_file(path, registry, pipeline, limits)
        failed = failed or bool(result.errors)
        if format is OutputFormat.json:
            reports.append(_check_report(path, result))
        else:
            print_diagnostics(result.diagnostics, result.sources)
            _print_summary(path, result)
    if format is OutputFormat.json:
        typer.echo(json.dumps(reports, indent=2))
    if failed:
        raise typer.Exit(EXIT_DIAGNOSTICS)


def _summary(pipeline: Pipeline) -> dict[str, Any]:
    registry = default_registry()
    cost: CostRange = estimate_range(pipeline, registry)
    size = space_size(pipeline)
    return {
        "pipeline": pipeline.name,
        "nodes": len(pipeline.nodes),
        "holes": [ref.name for ref in holes(pipeline)],
        "search_space": None if size == float("inf") else int(size),
        "cost_per_query": cost.to_dict(),
        "fingerprint": pipeline.fingerprint(),
    }


def _check_report(path: Path, result: CompileResult) -> dict[str, Any]:
    report: dict[str, Any] = {
        "file": str(path),
        "ok": not result.errors,
        "diagnostics": json.loads(diagnostics_json(result.diagnostics)),
    }
    if result.pipeline is not None:
        report |= _summary(result.pipeline)
    return report


def _print_summary(path: Path, result: CompileResult) -> None:
    if result.errors:
        errors = len(result.errors)
        typer.echo(f"{path}: {errors} error{'s' * (errors != 1)}")
        return
    if result.pipeline is None:
        typer.echo(f"{path}: ok (no pipeline: definitions only)")
        return
    info = _summary(result.pipeline)
    cost = info["cost_per_query"]
    calls = _span_text(cost["min_calls"], cost["max_calls"])
    tokens = _span_text(cost["min_tokens"], cost["max_tokens"])
    approx = "" if cost["exhaustive"] else " (sampled)"
    space = "continuous" if info["search_space"] is None else f"{info['search_space']:,}"
    typer.echo(
        f"{path}: ok — pipeline '{info['pipeline']}', {_count(info['nodes'], 'node')}, "
        f"{_count(len(info['holes']), 'hole')} (search space: {space})"
    )
    typer.echo(f"  per query: {calls} model calls, at most {tokens} tokens{approx}")
    if cost.get("exit_calls") is not None:
        typer.echo(
            f"  early exit: {cost['exit_calls']:,} model calls, at most"
            f" {cost['exit_tokens']:,} tokens when a query stops at the first exit_if"
        )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _span_text(low: int, high: int) -> str:
    return f"{low:,}" if low == high else f"{low:,}–{high:,}"


# --- fmt ------------------------------------------------------------------------------------


def fmt(
    files: Annotated[list[Path], typer.Argument(help=".pipe files to format in place.")],
    check_only: Annotated[
        bool, typer.Option("--check", help="Only report files that would change (exit 1).")
    ] = False,
    to_stdout: Annotated[
        bool, typer.Option("--stdout", help="Print instead of rewriting.")
    ] = False,
) -> None:
    """Rewrite FILES in the canonical form (comments kept). Idempotent."""
    for path in files:
        require_file(path)
    changed = []
    failed = False
    limits = source_limits()
    for path in files:
        text = _read_source(path, limits)
        if text is None:
            failed = True
            continue
        try:
            formatted = format_source(text, str(path), limits)
        except DiagnosticError as error:
            print_diagnostics(error.diagnostics, error.sources or _source_map(path, text))
            failed = True
            continue
        if to_stdout:
            typer.echo(formatted, nl=False)
        elif formatted != text:
            changed.append(path)
            if not check_only:
                try:
                    write_atomic(path, formatted)
                except OSError as error:
                    usage_error(f"{path}: cannot rewrite it ({error.strerror or error})")
    for path in changed:
        typer.echo(f"{'would reformat' if check_only else 'reformatted'} {path}", err=True)
    if failed or (check_only and changed):
        raise typer.Exit(EXIT_DIAGNOSTICS)


def _read_source(path: Path, limits: SourceLimits) -> str | None:
    """The file's text, or None after printing why it cannot be formatted: too large, or
    not UTF-8 (rewriting would replace the undecodable bytes: nothing may be lost)."""
    try:
        problem = size_problem(path.stat().st_size, str(path), limits)
        data = b"" if problem is not None else path.read_bytes()
    except OSError as error:
        usage_error(f"{path}: cannot read it ({error.strerror or error})")
    if problem is None:
        text, problem = decode(data, str(path))
        if problem is None:
            return text
        print_diagnostics((problem,), _source_map(path, text))
        return None
    print_diagnostics((problem,), {})
    return None


def _source_map(path: Path, text: str) -> dict[str, Any]:
    from archon.source import SourceFile

    return {str(path): SourceFile(str(path), text)}


# --- graph ----------------------------------------------------------------------------------


def graph(
    file: Annotated[Path, typer.Argument(help="The .pipe file.")],
    format: Annotated[
        GraphFormat, typer.Option("--format", help="dot, mermaid or json.")
    ] = GraphFormat.dot,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Write to a file; .png/.svg/.pdf need graphviz."),
    ] = None,
    params: Annotated[
        Path | None, typer.Option(help="Show the pipeline for these hole values (JSON).")
    ] = None,
    defaults: Annotated[
        bool, typer.Option(help="Show the pipeline with every hole at its default.")
    ] = False,
    pipeline: Annotated[
        str | None, typer.Option(help="Pipeline to draw in a multi-pipeline file.")
    ] = None,
) -> None:
    """Draw the dataflow graph: the template (optional/repeated layers dashed) or one assignment."""
    check_output_path(output, "--output")
    shown = load_template(file, default_registry(), pipeline)
    chosen = read_params(params)
    if chosen is not None or defaults:
        try:
            shown, _ = assign(shown, chosen, default_registry())  # type: ignore[arg-type]
        except AssignmentError as error:
            usage_error(str(error))
    suffix = output.suffix.lower().lstrip(".") if output else ""
    if suffix in ("png", "svg", "pdf"):
        _render_graphviz(to_dot(shown), suffix, output)  # type: ignore[arg-type]
        return
    render = {GraphFormat.dot: to_dot, GraphFormat.mermaid: to_mermaid, GraphFormat.json: to_json}
    text = render[format](shown)
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_output(output, text, "--output")


def _render_graphviz(dot_text: str, fmt_name: str, output: Path) -> None:
    dot = shutil.which("dot")
    if dot is None:
        usage_error(
            "drawing a picture needs graphviz's `dot` program, which is not installed "
            "(e.g. `apt-get install graphviz`); use `-o graph.dot` or `--format mermaid` instead"
        )
    completed = subprocess.run(
        [dot, f"-T{fmt_name}"],
        input=dot_text.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    if completed.returncode != 0:
        usage_error(f"graphviz failed: {completed.stderr.decode(errors='replace').strip()}")
    write_output(output, completed.stdout, "--output")


# --- kinds ----------------------------------------------------------------------------------


def kinds(
    kind: Annotated[str | None, typer.Argument(help="Show only this kind.")] = None,
    format: Annotated[
        OutputFormat, typer.Option("--format", help="text or json.")
    ] = OutputFormat.text,
    prompts: Annotated[
        bool, typer.Option("--prompts", help="Also print each kind's default prompt templates.")
    ] = False,
) -> None:
    """List the layer kinds: parameters with defaults, input and output types, description."""
    registry = default_registry()
    layers = list(registry)
    if kind is not None:
        try:
            layers = [registry.get(kind)]
        except UnknownLayerKind as error:  # carries the did-you-mean hint
            usage_error(str(error))
    described = [describe_kind(layer) for layer in layers]
    if format is OutputFormat.json:
        typer.echo(json.dumps(described, indent=2))
        return
    from rich.table import Table  # imported here: check and fmt start without rich

    console = stdout()
    for info in described:
        console.print(
            f"[bold]{info['kind']}[/bold]  ({info['consumes'] or 'query'} -> {info['produces']})"
        )
        console.print(f"  {info['doc']}")
        table = Table(show_header=True, box=None, padding=(0, 2))
        table.add_column("param")
        table.add_column("type")
        table.add_column("default")
        for param in info["params"]:
            table.add_row(param["name"], param["type"], param["default"])
        console.print(table)
        if prompts:
            for name, template in info["prompts"].items():
                console.print(f"  [bold]prompt '{name}':[/bold]")
                console.print(template, markup=False)
        console.print()


def describe_kind(layer: type[Layer]) -> dict[str, Any]:
    """A kind's name, ports, docstring and parameters as plain data."""
    params = []
    for name, field in layer.Params.model_fields.items():
        default = "(required)" if field.is_required() else repr(field.default)
        params.append({"name": name, "type": _type_text(field.annotation), "default": default})
    return {
        "kind": layer.kind,
        "doc": (layer.__doc__ or "").strip().splitlines()[0] if layer.__doc__ else "",
        "consumes": ", ".join(t.__name__ for t in layer.consumes),
        "produces": layer.produces.__name__,
        "params": params,
        "prompts": dict(layer.prompts),
    }


def _type_text(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return " | ".join(repr(option) for option in get_args(annotation))
    text = getattr(annotation, "__name__", None) if get_origin(annotation) is None else None
    return text or str(annotation).replace("typing.", "")


def estimate_text(pipeline: Pipeline) -> str:
    """One line per model: calls and token bound for a concrete pipeline."""
    cost = estimate(pipeline, default_registry())
    lines = [f"{cost.calls} calls, at most {cost.tokens:,} tokens per query"]
    if cost.min_calls is not None:
        lines.append(f"  at least {cost.min_calls} calls (a query that stops at the first exit)")
    for model in cost.per_model:
        bound = f"≤{model.tokens_in:,} in + ≤{model.tokens_out:,} out"
        lines.append(f"  {model.model}: {model.calls} calls, {bound}")
    return "\n".join(lines)
