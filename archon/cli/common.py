"""Shared CLI helpers: printing diagnostics, exit codes, reading params files, validating
paths and numbers before any model is called, the input limits read from the environment."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from archon.dsl.limits import NumberTooLarge, SourceLimits, json_numbers
from archon.errors import Diagnostic, not_positive, render_all
from archon.outputs import output_problem, write_atomic
from archon.source import SourceFile

if TYPE_CHECKING:  # rich is imported by the commands that print with it, when they do
    from rich.console import Console

EXIT_OK = 0
EXIT_DIAGNOSTICS = 1
EXIT_USAGE = 2
EXIT_RUNTIME = 3


def stdout() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def usage_error(message: str) -> NoReturn:
    """Print ``message`` and exit with the usage-error code."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


MAX_JSON_BYTES = 50_000_000  # a --params file or a line-oriented query file
_LIMIT_VARIABLES = {
    "max_bytes": "ARCHON_MAX_PIPE_BYTES",
    "max_depth": "ARCHON_MAX_PIPE_DEPTH",
    "max_nodes": "ARCHON_MAX_PIPE_NODES",
    "max_total_bytes": "ARCHON_MAX_PIPE_TOTAL_BYTES",
}


def require_file(path: Path, what: str = "a .pipe file") -> None:
    if not path.exists():
        usage_error(f"{path}: no such file")
    if path.is_dir():
        usage_error(f"{path} is a directory, not {what}")


def source_limits(environ: Mapping[str, str] | None = None) -> SourceLimits:
    """The ``.pipe`` input limits, raised by ``ARCHON_MAX_PIPE_BYTES`` / ``_DEPTH`` /
    ``_NODES`` (read only here, by the CLI)."""
    env = os.environ if environ is None else environ
    values: dict[str, int] = {}
    for field, variable in _LIMIT_VARIABLES.items():
        text = env.get(variable, "").strip().replace("_", "")
        if not text:
            continue
        if not text.isdigit() or int(text) < 1:
            usage_error(f"{variable} must be a positive whole number, not {env[variable]!r}")
        values[field] = int(text)
    return SourceLimits(**values)


def read_text_file(path: Path, what: str, max_bytes: int = MAX_JSON_BYTES) -> str:
    """The UTF-8 text of ``path``, or a usage error that says why it cannot be read."""
    require_file(path, what)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            usage_error(f"{path}: {size:,} bytes is too large for {what} (limit {max_bytes:,})")
        data = path.read_bytes()
    except OSError as error:
        usage_error(f"{path}: cannot read it ({error.strerror or error})")
    if b"\x00" in data[:8192]:
        usage_error(f"{path}: binary data, not {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        usage_error(
            f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})"
        )


def parse_json(text: str, where: str) -> Any:
    """``json.loads`` whose failures (syntax, absurd nesting, integers of more than
    ``MAX_INT_DIGITS`` digits, numbers that overflow) are usage errors."""
    try:
        return json_numbers(text)
    except NumberTooLarge as error:
        usage_error(f"{where}: {error}")
    except json.JSONDecodeError as error:
        usage_error(
            f"{where}: not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
        )
    except RecursionError:
        usage_error(f"{where}: the JSON is nested too deeply")


def check_output_path(path: Path | None, flag: str) -> None:
    """Fail now, before any model call, when ``path`` cannot be written: it is a directory,
    a device, a FIFO or a socket (never opened: a FIFO would block), its folder cannot be
    created, or the file cannot be opened for appending."""
    if path is None:
        return
    problem = output_problem(path)
    if problem is not None:
        usage_error(f"{flag} {path} {problem}")
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as error:
        usage_error(f"{flag} {path} cannot be written: {error.strerror or error}")
    if not existed:
        path.unlink(missing_ok=True)  # leave nothing behind if the run stops early


def write_output(path: Path, data: str | bytes, flag: str) -> None:
    """Write an output file atomically (:func:`archon.outputs.write_atomic`); a failure is
    one error line and the runtime exit code (the old file, if any, is left as it was)."""
    try:
        write_atomic(path, data)
    except OSError as error:
        typer.echo(
            f"error: {flag} {path} could not be written: {error.strerror or error}", err=True
        )
        raise typer.Exit(EXIT_RUNTIME) from None


def check_positive(value: float | None, flag: str, *, allow_zero: bool = False) -> None:
    """Usage error unless ``value`` is None or > 0 (>= 0 with ``allow_zero``)."""
    problem = not_positive(value, flag, allow_zero=allow_zero)
    if problem is not None:
        usage_error(problem)


def print_diagnostics(diagnostics: tuple[Diagnostic, ...], sources: dict[str, SourceFile]) -> None:
    if diagnostics:
        sys.stderr.write(render_all(diagnostics, sources) + "\n")


def read_params(path: Path | None) -> dict[str, object] | None:
    """Read a ``--params`` JSON file: a flat object of hole name -> value (or {"params": {...}})."""
    if path is None:
        return None
    data = parse_json(read_text_file(path, "a JSON params file"), str(path))
    if isinstance(data, dict) and isinstance(data.get("params"), dict):
        data = data["params"]
    if not isinstance(data, dict):
        usage_error(f"{path}: expected a JSON object of hole name -> value")
    return data
