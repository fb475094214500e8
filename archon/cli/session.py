"""Helpers shared by the commands that run pipelines (run, eval, search, serve): load a
``.pipe`` with ``--params``, and turn the connection, cache and bank options into the library's
run environment (:meth:`archon.runtime.RunEnv.open` and the functions beside it), reporting
its errors as usage errors (exit 2) and its warnings on stderr. The runtime is imported inside
the functions that need it, so that ``archon check`` and ``archon fmt`` never load it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from archon.cli.common import (
    EXIT_DIAGNOSTICS,
    check_positive,
    print_diagnostics,
    read_params,
    require_file,
    source_limits,
    usage_error,
)
from archon.compiler import check_file
from archon.compiler.structure import AssignmentError, assign
from archon.ir import Pipeline, Value
from archon.layers.registry import Registry

if TYPE_CHECKING:  # the runtime is imported by the commands that run models, when they do
    from archon.runtime import CallCache, Connection
    from archon.runtime.clients.router import RouterClient


def connection_from_options(
    allow_keys: list[str] | None, timeout_s: float | None, retries: int | None
) -> Connection:
    """The :class:`~archon.runtime.Connection` of ``--allow-key``, ``--timeout`` and
    ``--retries``, validated (a malformed grant is reported before anything runs)."""
    from archon.runtime.env import Connection

    check_positive(timeout_s, "--timeout")
    check_positive(retries, "--retries", allow_zero=True)
    with _usage_errors():
        connection = Connection(tuple(allow_keys or ()), timeout_s, retries)
        connection.key_policy()
    return connection


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


@contextmanager
def _usage_errors(no_cache: bool = False) -> Iterator[None]:
    """The run environment's setup errors as usage errors (exit 2)."""
    from archon.runtime.bank import BankError
    from archon.runtime.clients.keys import KeyPolicyError
    from archon.runtime.env import BanksNeedCache, EnvError

    try:
        yield
    except BankError as error:
        usage_error(f"--bank: {error}")
    except BanksNeedCache:
        usage_error("--bank needs the call cache: drop --no-cache")
    except (EnvError, KeyPolicyError) as error:
        usage_error(str(error))


def load_template(file: Path, registry: Registry, pipeline: str | None = None) -> Pipeline:
    """Compile ``file`` as it is, holes included; on errors print the diagnostics and exit 1
    (exit 2 when the file is missing or defines no pipeline)."""
    require_file(file)
    result = check_file(file, registry, pipeline, source_limits())
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


def check_model_path(model_path: Path | None) -> None:
    """Usage error unless ``--model-path`` is a readable GGUF file."""
    from archon.runtime.clients.router import GGUF_MAGIC

    if model_path is None:
        return
    require_file(model_path, "a GGUF model file")
    try:
        with model_path.open("rb") as handle:
            head = handle.read(len(GGUF_MAGIC))
    except OSError as error:
        usage_error(f"--model-path {model_path}: cannot read it ({error.strerror or error})")
    if head != GGUF_MAGIC:
        usage_error(f"--model-path {model_path} is not a GGUF model file")


def make_client(
    pipeline: Pipeline, model_path: Path | None = None, connection: Connection | None = None
) -> RouterClient:
    """The client ``archon run`` uses (see :func:`make_shared_client`)."""
    return make_shared_client((pipeline,), model_path, connection)


def make_shared_client(
    pipelines: Sequence[Pipeline],
    model_path: Path | None = None,
    connection: Connection | None = None,
) -> RouterClient:
    """One client for several pipelines (``archon serve``; :func:`make_client` for one):
    :func:`archon.runtime.open_client`, with its errors as usage errors (exit 2) and the
    keys it will not send reported on stderr."""
    from archon.runtime import env

    check_model_path(model_path)
    with _usage_errors():
        return env.open_client(pipelines, model_path=model_path, connection=connection, warn=_warn)


def open_cache(
    no_cache: bool,
    *,
    origin: dict[str, str] | None = None,
    banks: list[Path] | None = None,
) -> CallCache | None:
    """The persistent call cache in the archon home, or None with ``--no-cache``
    (:func:`archon.runtime.open_cache`): a bank that fails its checks exits 2; a broken or
    unopenable cache is a warning, never fatal."""
    from archon.runtime import env

    with _usage_errors():
        return env.open_cache(enabled=not no_cache, banks=banks or (), origin=origin, warn=_warn)


def bank_line(cache: CallCache | None) -> str | None:
    """``"banks answered N calls"`` when the cache draws on banks, else None."""
    if cache is None or not cache.banks:
        return None
    names = ", ".join(bank.name for bank in cache.banks)
    return f"bank ({names}) answered {cache.bank_hits} call(s)"
