"""Helpers shared by the commands that run pipelines (run, eval, search, serve): load a
``.pipe`` with ``--params``, build the model client (key grants, timeouts), open the call
cache. The runtime is imported inside the functions that need it, so that ``archon check``
and ``archon fmt`` never load it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
    from archon.runtime import CallCache, Limits
    from archon.runtime.clients.openai_compat import HttpTimeouts
    from archon.runtime.clients.router import RouterClient
    from archon.runtime.keys import KeyPolicy


@dataclass(frozen=True)
class Connection:
    """How a command reaches its models: key grants, per-attempt timeout, retries."""

    allow_keys: tuple[str, ...] = ()
    timeout_s: float | None = None
    retries: int | None = None

    @classmethod
    def from_options(
        cls, allow_keys: list[str] | None, timeout_s: float | None, retries: int | None
    ) -> Connection:
        """Validated ``--allow-key``, ``--timeout`` and ``--retries`` values."""
        check_positive(timeout_s, "--timeout")
        check_positive(retries, "--retries", allow_zero=True)
        connection = cls(tuple(allow_keys or ()), timeout_s, retries)
        connection.key_policy()  # a malformed grant is reported before anything runs
        return connection

    def limits(self, **kwargs: object) -> Limits:
        """A :class:`Limits` with these timeout and retries (defaults for the rest)."""
        from archon.runtime import Limits

        if self.timeout_s is not None:
            kwargs["timeout_s"] = self.timeout_s
        if self.retries is not None:
            kwargs["retries"] = self.retries
        return Limits(**kwargs)  # type: ignore[arg-type]

    def key_policy(self) -> KeyPolicy:
        from archon.runtime import models as local_models
        from archon.runtime.keys import KeyPolicy, KeyPolicyError

        try:
            return KeyPolicy.load(local_models.archon_home(), self.allow_keys)
        except KeyPolicyError as error:
            usage_error(str(error))

    def http_timeouts(self) -> HttpTimeouts:
        from archon.runtime.clients.openai_compat import HttpTimeouts

        return HttpTimeouts.for_total(self.timeout_s if self.timeout_s is not None else 300.0)


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
    """The client ``archon run`` uses: local models pulled into the archon home on first use,
    every other model through litellm with the pipeline's model options. Keys the pipeline
    asks for but the user has not confirmed are reported on stderr (and not sent)."""
    return make_shared_client((pipeline,), model_path, connection)


def make_shared_client(
    pipelines: Sequence[Pipeline],
    model_path: Path | None = None,
    connection: Connection | None = None,
) -> RouterClient:
    """One client for several pipelines (``archon serve``; :func:`make_client` for one): their
    ``models`` options merged, so a local model is loaded once however many pipelines use it.
    Exit 2 when two pipelines give the same model string different options."""
    from archon.runtime import models as local_models
    from archon.runtime.clients.base import ModelOptions
    from archon.runtime.clients.router import RouterClient, pipeline_options

    check_model_path(model_path)
    connection = connection or Connection()
    options: dict[str, ModelOptions] = {}
    for pipeline in pipelines:
        for model, option in pipeline_options(pipeline).items():
            if options.setdefault(model, option) != option:
                usage_error(
                    f"model '{model}' has different options in two pipelines; give them"
                    " different model strings or the same options"
                )
    home = local_models.archon_home()
    client = RouterClient(
        options,
        local_resolve=lambda name: local_models.ensure(name, home),
        local_paths={"*": model_path} if model_path else None,
        keys=connection.key_policy(),
        http_timeouts=connection.http_timeouts(),
    )
    for warning in client.key_warnings():
        typer.echo(f"warning: {warning}", err=True)
    return client


def open_cache(
    no_cache: bool,
    *,
    origin: dict[str, str] | None = None,
    banks: list[Path] | None = None,
) -> CallCache | None:
    """The persistent call cache in the archon home, or None with ``--no-cache``.

    ``origin`` (pipeline, dataset) is stored with each new entry, so ``archon cache export``
    can filter by it; ``banks`` are bank files the cache draws on for keys it lacks (a bank
    that fails its checks exits 2). A broken cache file is moved aside and replaced (a warning
    says where it went); a cache that cannot be opened at all is skipped with a warning,
    never fatal."""
    from archon.runtime import CallCache
    from archon.runtime import models as local_models
    from archon.runtime.bank import Bank, BankError
    from archon.runtime.cache import CacheError

    loaded = []
    for path in banks or []:
        try:
            loaded.append(Bank.load(path))
        except BankError as error:
            usage_error(f"--bank: {error}")
    if no_cache:
        if loaded:
            usage_error("--bank needs the call cache: drop --no-cache")
        return None
    cache = CallCache(local_models.archon_home() / "cache.sqlite", origin=origin, banks=loaded)
    try:
        warnings = cache.open()
    except CacheError as error:
        typer.echo(f"warning: {error}; running without the cache", err=True)
        return None
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    return cache


def bank_line(cache: CallCache | None) -> str | None:
    """``"banks answered N calls"`` when the cache draws on banks, else None."""
    if cache is None or not cache.banks:
        return None
    names = ", ".join(bank.name for bank in cache.banks)
    return f"bank ({names}) answered {cache.bank_hits} call(s)"
