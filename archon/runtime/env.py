"""The run environment: one frozen :class:`RunEnv` that every entry point takes whole.

A run needs a model client, the shared :class:`~archon.runtime.Limits`, the layer registry,
an optional call cache and trace sink, the secret redactor and the run seed. They used to
travel as seven keywords repacked between ``archon eval``, search, serve and the executor;
now :func:`~archon.runtime.run`, :func:`~archon.runtime.run_many`, evaluation
(``EvalConfig.env``), search and serve (``create_app(..., env=...)``) take one ``RunEnv``.

:meth:`RunEnv.open` builds the environment the CLI builds -- the routing client with the key
policy of ``keys.toml`` and the given grants, local models resolved into the archon home, HTTP
timeouts from the per-call timeout, and the persistent call cache with its banks -- so a
script gets exactly what ``archon run`` gets::

    from archon.runtime import Connection, RunEnv, run_sync

    env = RunEnv.open([pipeline], connection=Connection(timeout_s=60.0))
    try:
        print(run_sync(pipeline, "2+2?", env).answer)
    finally:
        env.close_sync()
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archon.errors import ArchonError, not_positive
from archon.layers.registry import Registry
from archon.runtime.cache import CallCache
from archon.runtime.clients.base import ModelClient
from archon.runtime.home import archon_home, cache_path
from archon.runtime.limits import Limits
from archon.runtime.secrets import Redactor
from archon.runtime.trace import TraceSink

if TYPE_CHECKING:
    from archon.ir import Pipeline
    from archon.runtime.bank import Bank
    from archon.runtime.clients.keys import KeyPolicy
    from archon.runtime.clients.openai_compat import HttpTimeouts
    from archon.runtime.clients.router import RouterClient

logger = logging.getLogger(__name__)

Warn = Callable[[str], None]
"""Receives a warning line (the CLI prints it on stderr; the default logs it)."""

DEFAULT_HTTP_TIMEOUT_S = 300.0
"""Total HTTP timeout of one attempt when the connection sets none."""


class EnvError(ArchonError):
    """The run environment cannot be built as asked (conflicting model options, a bad
    connection setting)."""


class BanksNeedCache(EnvError):
    """Banks were given with the call cache turned off (banks answer through the cache)."""


def _default_registry() -> Registry:
    from archon.layers import default_registry

    return default_registry()


@dataclass(frozen=True, kw_only=True)
class RunEnv:
    """Everything a run shares besides the pipeline and its queries.

    Attributes:
        client: where model calls go (``RouterClient``, ``ScriptedClient`` ...).
        limits: concurrency, timeouts and retries; share one instance between everything
            that runs at the same time (default: a fresh ``Limits()``).
        registry: layer kinds (default: the built-in ones and installed plugins).
        cache: the persistent call cache (None: no caching).
        trace: receives one record per model call (None: no trace).
        redactor: secret redaction of errors and traces (default: from the environment).
        seed: run seed: layer RNGs and unset sampling seeds derive from it.
    """

    client: ModelClient
    limits: Limits = field(default_factory=Limits)
    registry: Registry = field(default_factory=_default_registry)
    cache: CallCache | None = None
    trace: TraceSink | None = None
    redactor: Redactor = field(default_factory=Redactor.from_environ)
    seed: int = 0

    def replace(self, **changes: Any) -> RunEnv:
        """A copy with ``changes`` applied (unknown names raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def open(
        cls,
        pipelines: Sequence[Pipeline],
        *,
        connection: Connection | None = None,
        model_path: Path | None = None,
        cache: bool = True,
        banks: Sequence[Path | Bank] = (),
        origin: Mapping[str, str] | None = None,
        limits: Limits | None = None,
        registry: Registry | None = None,
        trace: TraceSink | None = None,
        redactor: Redactor | None = None,
        seed: int = 0,
        warn: Warn | None = None,
    ) -> RunEnv:
        """The environment ``archon run``/``eval``/``search``/``serve`` build.

        Args:
            pipelines: the pipelines the client serves (their ``models`` options merged).
            connection: key grants, per-attempt timeout and retries (default: none).
            model_path: a GGUF file answering every ``local/...`` model.
            cache: open the persistent call cache in the archon home.
            banks: bank files (or loaded banks) the cache draws on for keys it lacks.
            origin: stored with new cache entries (``archon cache export`` filters by it).
            limits: default: ``connection.limits()``.
            registry, trace, redactor, seed: as in :class:`RunEnv`.
            warn: receives warnings (keys not sent, a cache set aside ...).

        Raises:
            EnvError: two pipelines give one model different options; a bad connection.
            KeyPolicyError: a malformed key grant or ``keys.toml``.
            BankError, BanksNeedCache: a bank that fails its checks; banks without the cache.
        """
        connection = connection or Connection()
        call_cache = open_cache(enabled=cache, banks=banks, origin=origin, warn=warn)
        try:
            client = open_client(pipelines, model_path=model_path, connection=connection, warn=warn)
        except BaseException:
            if call_cache is not None:
                call_cache.close()
            raise
        return cls(
            client=client,
            limits=limits or connection.limits(),
            registry=registry or _default_registry(),
            cache=call_cache,
            trace=trace,
            redactor=redactor or Redactor.from_environ(),
            seed=seed,
        )

    async def aclose(self) -> None:
        """Close the client and the cache (for an environment from :meth:`open`)."""
        try:
            await self.client.aclose()
        finally:
            if self.cache is not None:
                self.cache.close()

    def close_sync(self) -> None:
        """:meth:`aclose` outside an event loop."""
        asyncio.run(self.aclose())


@dataclass(frozen=True)
class Connection:
    """How a run reaches its models: key grants, per-attempt timeout, retries.

    Attributes:
        allow_keys: ``--allow-key`` grants (``VAR=host``), on top of ``keys.toml``.
        timeout_s: wall limit of one attempt (None: the default of :class:`Limits`).
        retries: retries of a retryable failure (None: the default of :class:`Limits`).
    """

    allow_keys: tuple[str, ...] = ()
    timeout_s: float | None = None
    retries: int | None = None

    def __post_init__(self) -> None:
        problem = not_positive(self.timeout_s, "timeout_s") or not_positive(
            self.retries, "retries", allow_zero=True
        )
        if problem is not None:
            raise EnvError(problem)

    def limits(self, **kwargs: Any) -> Limits:
        """A :class:`Limits` with these timeout and retries (defaults for the rest)."""
        if self.timeout_s is not None:
            kwargs["timeout_s"] = self.timeout_s
        if self.retries is not None:
            kwargs["retries"] = self.retries
        return Limits(**kwargs)

    def key_policy(self) -> KeyPolicy:
        """The grants plus ``keys.toml`` of the archon home (raises ``KeyPolicyError``)."""
        from archon.runtime.clients.keys import KeyPolicy

        return KeyPolicy.load(archon_home(), self.allow_keys)

    def http_timeouts(self) -> HttpTimeouts:
        from archon.runtime.clients.openai_compat import HttpTimeouts

        total = self.timeout_s if self.timeout_s is not None else DEFAULT_HTTP_TIMEOUT_S
        return HttpTimeouts.for_total(total)


def resolve_env(
    env: RunEnv | None, client: ModelClient | None, fields: Mapping[str, Any], caller: str
) -> RunEnv:
    """``env`` itself, or one built from the keyword shorthand ``client=..., limits=...``
    (the :class:`RunEnv` fields; None values take the field's default) that
    :func:`~archon.runtime.run`, :func:`~archon.runtime.run_many` and
    :func:`~archon.serve.create_app` accept instead of ``env``."""
    given = {name: value for name, value in fields.items() if value is not None}
    if client is not None:
        given["client"] = client
    if env is not None:
        if given:
            names = ", ".join(sorted(given))
            raise TypeError(f"{caller}() takes env or its fields as keywords, not both ({names})")
        return env
    unknown = sorted(set(given) - _ENV_FIELDS)
    if unknown:  # what a misspelt keyword argument raises in Python
        raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r}")
    if "client" not in given:
        raise TypeError(f"{caller}() needs env (a RunEnv) or client=")
    return RunEnv(**given)


_ENV_FIELDS = frozenset(f.name for f in dataclasses.fields(RunEnv))


def _log_warning(message: str) -> None:
    logger.warning("%s", message)


def open_client(
    pipelines: Sequence[Pipeline],
    *,
    model_path: Path | None = None,
    connection: Connection | None = None,
    warn: Warn | None = None,
) -> RouterClient:
    """One routing client for ``pipelines``: their ``models`` options merged (a local model
    is loaded once however many pipelines use it), local models pulled into the archon home
    on first use (or all read from ``model_path``), every other model through its route with
    the key policy and HTTP timeouts of ``connection``. Keys a pipeline asks for but the user
    has not confirmed are reported through ``warn`` (and not sent).

    Raises:
        EnvError: two pipelines give the same model string different options.
        KeyPolicyError: a malformed grant or ``keys.toml``.
    """
    from archon.runtime.clients.base import ModelOptions
    from archon.runtime.clients.local import models as local_models
    from archon.runtime.clients.router import RouterClient, pipeline_options

    connection = connection or Connection()
    warn = warn or _log_warning
    options: dict[str, ModelOptions] = {}
    for pipeline in pipelines:
        for model, option in pipeline_options(pipeline).items():
            if options.setdefault(model, option) != option:
                raise EnvError(
                    f"model '{model}' has different options in two pipelines; give them"
                    " different model strings or the same options"
                )
    home = archon_home()
    client = RouterClient(
        options,
        local_resolve=lambda name: local_models.ensure(name, home),
        local_paths={"*": model_path} if model_path else None,
        keys=connection.key_policy(),
        http_timeouts=connection.http_timeouts(),
    )
    for warning in client.key_warnings():
        warn(warning)
    return client


def open_cache(
    *,
    enabled: bool = True,
    banks: Sequence[Path | Bank] = (),
    origin: Mapping[str, str] | None = None,
    path: Path | None = None,
    warn: Warn | None = None,
) -> CallCache | None:
    """The persistent call cache (default: ``cache.sqlite`` in the archon home), or None when
    not ``enabled``.

    ``origin`` (pipeline, dataset) is stored with each new entry; ``banks`` are bank files
    the cache draws on for keys it lacks. A broken cache file is moved aside and replaced (a
    warning says where it went); a cache that cannot be opened at all is skipped with a
    warning, never fatal.

    Raises:
        BankError: a bank fails its checks.
        BanksNeedCache: banks are given without the cache.
    """
    from archon.runtime.bank import Bank
    from archon.runtime.cache import CacheError

    warn = warn or _log_warning
    loaded = [bank if isinstance(bank, Bank) else Bank.load(bank) for bank in banks]
    if not enabled:
        if loaded:
            raise BanksNeedCache("banks answer through the call cache: enable it")
        return None
    where = path if path is not None else cache_path()
    cache = CallCache(where, origin=dict(origin) if origin else None, banks=loaded)
    try:
        warnings = cache.open()
    except CacheError as error:
        warn(f"{error}; running without the cache")
        return None
    for warning in warnings:
        warn(warning)
    return cache
