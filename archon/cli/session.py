"""Helpers shared by the commands that run pipelines (run, eval, search, serve): load a ``.pipe``
with ``--params``, build the model client, open the call cache."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from archon.cli.common import (
    EXIT_DIAGNOSTICS,
    print_diagnostics,
    read_params,
    require_file,
    usage_error,
)
from archon.compiler import check_file
from archon.compiler.structure import AssignmentError, assign
from archon.ir import Pipeline, Value
from archon.layers.registry import Registry

if TYPE_CHECKING:  # the runtime is imported by the commands that run models, when they do
    from archon.runtime import CallCache
    from archon.runtime.clients.router import RouterClient


def load_template(file: Path, registry: Registry, pipeline: str | None = None) -> Pipeline:
    """Compile ``file`` as it is, holes included; on errors print the diagnostics and exit 1
    (exit 2 when the file is missing or defines no pipeline)."""
    require_file(file)
    result = check_file(file, registry, pipeline)
    if result.errors or result.pipeline is None:
        print_diagnostics(result.diagnostics, result.sources)
        if result.pipeline is None and not result.errors:
            usage_error(f"{file} defines no pipeline")
        raise typer.Exit(EXIT_DIAGNOSTICS)
    return result.pipeline


def load_pipeline(file: Path, params: Path | None, registry: Registry) -> Pipeline:
    """Compile ``file`` (see :func:`load_template`) and assign its holes from the
    ``--params`` JSON (defaults for the rest, with a note on stderr)."""
    return assign_params(load_template(file, registry), params, registry)


def assign_params(template: Pipeline, params: Path | None, registry: Registry) -> Pipeline:
    """Assign the holes of ``template`` from the ``--params`` JSON file (defaults for the
    rest, with a note on stderr); exit 2 when the file does not fit the pipeline."""
    chosen: dict[str, Value] | None = read_params(params)  # type: ignore[assignment]
    try:
        concrete, defaulted = assign(template, chosen, registry)
    except AssignmentError as error:
        usage_error(str(error))
    if defaulted:
        typer.echo(
            f"note: {len(defaulted)} hole(s) took their defaults (pass --params to choose): "
            + ", ".join(defaulted),
            err=True,
        )
    return concrete


def make_client(pipeline: Pipeline, model_path: Path | None = None) -> RouterClient:
    """The client ``archon run`` uses: local models pulled into the archon home on first use,
    every other model through litellm with the pipeline's model options."""
    from archon.runtime import models as local_models
    from archon.runtime.clients.router import RouterClient

    if model_path is not None:
        require_file(model_path)
    home = local_models.archon_home()
    return RouterClient.for_pipeline(
        pipeline,
        local_resolve=lambda name: local_models.ensure(name, home),
        local_paths={"*": model_path} if model_path else None,
    )


def make_shared_client(
    pipelines: Sequence[Pipeline], model_path: Path | None = None
) -> RouterClient:
    """One client for several pipelines (``archon serve``): their ``models`` options merged,
    so a local model is loaded once however many pipelines use it. Exit 2 when two
    pipelines give the same model string different options."""
    from archon.runtime import models as local_models
    from archon.runtime.clients.base import ModelOptions
    from archon.runtime.clients.router import RouterClient, pipeline_options

    if model_path is not None:
        require_file(model_path)
    options: dict[str, ModelOptions] = {}
    for pipeline in pipelines:
        for model, option in pipeline_options(pipeline).items():
            if options.setdefault(model, option) != option:
                usage_error(
                    f"model '{model}' has different options in two pipelines; give them"
                    " different model strings or the same options"
                )
    home = local_models.archon_home()
    return RouterClient(
        options,
        local_resolve=lambda name: local_models.ensure(name, home),
        local_paths={"*": model_path} if model_path else None,
    )


def open_cache(no_cache: bool) -> CallCache | None:
    """The persistent call cache in the archon home, or None with ``--no-cache``."""
    from archon.runtime import CallCache
    from archon.runtime import models as local_models

    return None if no_cache else CallCache(local_models.archon_home() / "cache.sqlite")
