"""Shared CLI helpers: printing diagnostics, exit codes, reading params files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from archon.errors import Diagnostic, render_all
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


def require_file(path: Path) -> None:
    if not path.exists():
        usage_error(f"{path}: no such file")
    if path.is_dir():
        usage_error(f"{path} is a directory, not a .pipe file")


def print_diagnostics(diagnostics: tuple[Diagnostic, ...], sources: dict[str, SourceFile]) -> None:
    if diagnostics:
        sys.stderr.write(render_all(diagnostics, sources) + "\n")


def read_params(path: Path | None) -> dict[str, object] | None:
    """Read a ``--params`` JSON file: a flat object of hole name -> value (or {"params": {...}})."""
    if path is None:
        return None
    require_file(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        usage_error(f"{path}: not a JSON params file ({error})")
    if isinstance(data, dict) and isinstance(data.get("params"), dict):
        data = data["params"]
    if not isinstance(data, dict):
        usage_error(f"{path}: expected a JSON object of hole name -> value")
    return data
