"""``archon import-archon`` / ``archon export-archon``: original Archon JSON configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from archon.cli.common import (
    check_output_path,
    read_params,
    require_file,
    usage_error,
    write_output,
)
from archon.cli.session import load_template
from archon.compiler.structure import AssignmentError, assign
from archon.errors import render
from archon.interop.archon_config import ArchonConfigError, export_config, import_file
from archon.layers import default_registry


def register(app: typer.Typer) -> None:
    """Add the interop commands to ``app``."""
    app.command("import-archon")(import_archon)
    app.command("export-archon")(export_archon)


def import_archon(
    config: Annotated[Path, typer.Argument(help="An Archon JSON architecture config.")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the .pipe here.")
    ] = None,
) -> None:
    """Translate an original Archon JSON config into a .pipe file (warnings name every key
    that has no equivalent; those keys are kept as comments in the output)."""
    require_file(config, "an Archon JSON config")
    check_output_path(output, "--output")
    try:
        result = import_file(config)
    except ArchonConfigError as error:
        usage_error(str(error))
    for warning in result.warnings:
        typer.echo(render(warning), err=True)
    if output is None:
        typer.echo(result.text, nl=False)
    else:
        write_output(output, result.text, "--output")
        typer.echo(f"wrote {output}", err=True)


def export_archon(
    file: Annotated[Path, typer.Argument(help="The .pipe file.")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the JSON here.")
    ] = None,
    params: Annotated[Path | None, typer.Option(help="Hole values (JSON) for a template.")] = None,
) -> None:
    """Write a pipeline as an original Archon JSON config, with the layers Archon would run."""
    check_output_path(output, "--output")
    pipeline = load_template(file, default_registry())
    try:
        pipeline, _ = assign(pipeline, read_params(params), default_registry())  # type: ignore[arg-type]
        config = export_config(pipeline)
    except (AssignmentError, ArchonConfigError) as error:
        usage_error(str(error))
    text = json.dumps(config, indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_output(output, text, "--output")
