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
    from archon.cli.options import BudgetFlags, CacheFlags, ConnectionFlags
    from archon.ir import Budget
    from archon.observability.otel import Otel, OtelSink
    from archon.runtime import CallCache, Connection, ModelClient, RunEnv, TraceSink
    from archon.runtime.clients.router import RouterClient


def connection_of(flags: ConnectionFlags) -> Connection:
    """The :class:`~archon.runtime.Connection` of ``--allow-key``, ``--timeout`` and
    ``--retries``, its values validated (the grants are read by :func:`check_connection`)."""
    from archon.runtime.env import Connection

    check_positive(flags.timeout, "--timeout")
    check_positive(flags.retries, "--retries", allow_zero=True)
    with _usage_errors():
        return Connection(tuple(flags.allow_keys or ()), flags.timeout, flags.retries)


def check_connection(flags: ConnectionFlags) -> Connection:
    """:func:`connection_of`, with its key grants and ``keys.toml`` read once up front, so a
    malformed grant is reported before anything runs."""
    connection = connection_of(flags)
    with _usage_errors():
        connection.key_policy()
    return connection


def budget_of(flags: BudgetFlags) -> Budget | None:
    """The run-level :class:`~archon.ir.Budget` of the ``--budget-*`` options (None: no limit);
    a zero or negative limit is a usage error."""
    from archon.ir import Budget

    limits = flags.items()
    for name, value in limits.items():
        check_positive(value, f"--budget-{name}")
    return Budget(**limits) if limits else None


def run_env(
    client: ModelClient,
    connection: ConnectionFlags,
    cache: CallCache | None,
    *,
    registry: Registry,
    seed: int,
    trace: TraceSink | None = None,
    **limits: int,
) -> RunEnv:
    """The run environment of a command: ``client`` (from :func:`make_client`), the limits of
    ``connection`` (plus ``limits``, e.g. ``max_concurrency``), the cache, trace and seed."""
    from archon.runtime import RunEnv

    return RunEnv(
        client=client,
        limits=connection_of(connection).limits(**limits),
        registry=registry,
        cache=cache,
        trace=trace,
        seed=seed,
    )


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


@contextmanager
def _usage_errors() -> Iterator[None]:
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


def make_client(pipeline: Pipeline, connection: ConnectionFlags) -> RouterClient:
    """The client of a command that runs one pipeline (see :func:`make_shared_client`)."""
    return make_shared_client((pipeline,), connection)


def make_shared_client(pipelines: Sequence[Pipeline], connection: ConnectionFlags) -> RouterClient:
    """One client for several pipelines (``archon serve``; :func:`make_client` for one):
    :func:`archon.runtime.open_client` with the ``ConnectionFlags``, its errors as usage
    errors (exit 2) and the keys it will not send reported on stderr."""
    from archon.runtime import env

    check_model_path(connection.model_path)
    policy = connection_of(connection)
    with _usage_errors():
        return env.open_client(
            pipelines, model_path=connection.model_path, connection=policy, warn=_warn
        )


def open_cache(flags: CacheFlags, *, origin: dict[str, str] | None = None) -> CallCache | None:
    """The persistent call cache in the archon home with the ``--bank`` files, or None with
    ``--no-cache`` (:func:`archon.runtime.open_cache`): a bank that fails its checks exits 2;
    a broken or unopenable cache is a warning, never fatal."""
    from archon.runtime import env

    with _usage_errors():
        return env.open_cache(
            enabled=flags.enabled, banks=flags.banks or (), origin=origin, warn=_warn
        )


def bank_line(cache: CallCache | None) -> str | None:
    """``"banks answered N calls"`` when the cache draws on banks, else None."""
    if cache is None or not cache.banks:
        return None
    names = ", ".join(bank.name for bank in cache.banks)
    return f"bank ({names}) answered {cache.bank_hits} call(s)"


def open_otel(flag: bool, *, include_prompts: bool = False) -> Otel | None:
    """The OpenTelemetry exporter of ``--otel`` (or of ``OTEL_EXPORTER_OTLP_ENDPOINT``), or
    None when neither asks for one; a missing ``otel`` extra is a usage error (exit 2).
    Prompts go into spans with ``include_prompts`` or
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``."""
    from archon.observability.otel import Otel, OtelMissing, content_requested, otel_requested

    if not otel_requested(flag):
        return None
    try:
        return Otel.to_otlp(include_prompts=include_prompts or content_requested())
    except OtelMissing as error:
        usage_error(str(error))


def open_otel_run(
    flag: bool, command: str, pipeline: Pipeline, *, include_prompts: bool = False
) -> OtelSink | None:
    """The span sink of one command's run (``archon run``, ``eval``, ``search``): its root
    span is ``archon COMMAND``; closing it exports what is left (see :func:`open_otel`)."""
    otel = open_otel(flag, include_prompts=include_prompts)
    if otel is None:
        return None
    attributes = {"archon.command": command, "archon.pipeline": pipeline.name}
    return otel.run(f"archon {command}", attributes, owns=True)
