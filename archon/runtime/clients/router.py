"""``RouterClient``: ``local/...`` models to the local client, every other model to litellm.

Each backend is created lazily on its first call, so a pipeline that only uses API models never
imports llama-cpp-python and one that only uses local models never imports litellm. Per-model
options (``api_base``, ``api_key_env``, prices) come from the pipeline's ``models`` block:

.. code-block:: text

    models {
      judge = model("openai/my-model", api_base = "http://127.0.0.1:8000/v1",
                    api_key_env = "MY_SERVER_API_KEY",
                    usd_per_mtok_in = 0.15, usd_per_mtok_out = 0.6)
    }

A literal ``api_key`` in a ``.pipe`` file is refused: keys come from the environment, and
go only where :class:`~archon.runtime.clients.keys.KeyPolicy` allows (a custom ``api_base`` gets
``MY_SERVER_API_KEY`` only once the user confirmed it with ``--allow-key`` or ``keys.toml``).

For the call cache, :meth:`RouterClient.cache_scope` names everything besides the request
that shapes an answer: the backend and its version, the endpoint, and for local models the
GGUF file (its registry sha256, else its path, size, mtime and a hash of its head).

Which path a model string takes is a route table (:data:`DEFAULT_ROUTES`), tried in order:

* ``local/<name>`` -> :class:`~archon.runtime.clients.local.client.LocalClient` (llama-cpp-python);
* ``openai/<name>`` with an ``api_base`` -> :class:`OpenAICompatClient` (lean pooled aiohttp:
  self-hosted vLLM / SGLang / llama.cpp servers, where per-call CPU cost matters);
* everything else -> :class:`~archon.runtime.clients.litellm.LiteLLMClient`.

A new backend is one :class:`Route`: a model-string prefix (or a predicate on the model
string and its options) and a factory, passed as ``RouterClient(routes=[...])``; those
routes are tried before the defaults::

    Route("mine", "mine/", lambda ctx: MyClient(ctx.options, keys=ctx.keys))
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from archon.errors import ArchonError
from archon.ir import ModelSpec, Pipeline, model_option_problem
from archon.runtime.clients.base import (
    ModelCallError,
    ModelClient,
    ModelOptions,
    MultiSampleClient,
    Price,
    PricedClient,
    StreamingClient,
)
from archon.runtime.clients.keys import KeyPolicy
from archon.runtime.clients.local.client import PREFIX, LocalClient
from archon.values import CompletionRequest, CompletionResponse

if TYPE_CHECKING:  # aiohttp is imported only when an OpenAI-compatible server is used
    from archon.runtime.clients.openai_compat import HttpTimeouts

_PRICE_IN = ("usd_per_mtok_in", "input_usd_per_mtok")
_PRICE_OUT = ("usd_per_mtok_out", "output_usd_per_mtok")


def options_from_spec(spec: ModelSpec) -> ModelOptions:
    """Provider options of one ``models`` entry."""
    values = {p.name: p.value for p in spec.options}
    for name, value in values.items():
        # The compiler reports these with a position; a hand-built IR is refused here.
        refused = model_option_problem(name, value)
        if refused is not None:
            raise ArchonError(f"model '{spec.alias}': {refused[0]}; {refused[1]}")
    price_in = next((values.pop(k) for k in _PRICE_IN if k in values), None)
    price_out = next((values.pop(k) for k in _PRICE_OUT if k in values), None)
    price = None
    if isinstance(price_in, int | float) and isinstance(price_out, int | float):
        price = Price.per_million(float(price_in), float(price_out))
    api_base = values.pop("api_base", None)
    key_env = values.pop("api_key_env", None)
    return ModelOptions(
        api_base=api_base if isinstance(api_base, str) else None,
        api_key_env=key_env if isinstance(key_env, str) else None,
        price=price,
        extra=tuple(sorted(values.items())),
    )


def pipeline_options(pipeline: Pipeline) -> dict[str, ModelOptions]:
    """Options of every model of ``pipeline.models``, keyed by model string."""
    return {spec.model: options_from_spec(spec) for spec in pipeline.models if spec.options}


@dataclass(frozen=True)
class RouteContext:
    """What a route's factory may build its backend from: the router's configuration."""

    options: Mapping[str, ModelOptions]
    keys: KeyPolicy
    http_timeouts: HttpTimeouts | None = None
    local_resolve: Callable[[str], Path] | None = None
    local_paths: Mapping[str, str | Path] | None = None


RoutePredicate = Callable[[str, ModelOptions | None], bool]
"""Whether a route serves a model string, given that model's options (None when it has none)."""
BackendFactory = Callable[[RouteContext], ModelClient]
"""Builds a route's backend, once per router, on the first request it serves."""


@dataclass(frozen=True)
class Route:
    """One entry of a router's table: the models it serves and how to build their backend.

    ``match`` is a model-string prefix (``""`` matches every model) or a predicate on the
    model string and its options. ``name`` identifies the backend: one backend is created
    per name and router, and an added route with a default route's name replaces it.
    """

    name: str
    match: str | RoutePredicate
    factory: BackendFactory

    def serves(self, model: str, options: ModelOptions | None) -> bool:
        """Whether this route takes ``model``."""
        if isinstance(self.match, str):
            return model.startswith(self.match)
        return self.match(model, options)


def _local_backend(ctx: RouteContext) -> ModelClient:
    return LocalClient(ctx.local_resolve, paths=ctx.local_paths)


def _served_openai(model: str, options: ModelOptions | None) -> bool:
    return model.startswith("openai/") and options is not None and bool(options.api_base)


def _compat_backend(ctx: RouteContext) -> ModelClient:
    from archon.runtime.clients.openai_compat import OpenAICompatClient

    return OpenAICompatClient(ctx.options, keys=ctx.keys, timeouts=ctx.http_timeouts)


def _litellm_backend(ctx: RouteContext) -> ModelClient:
    from archon.runtime.clients.litellm import LiteLLMClient

    return LiteLLMClient(ctx.options, keys=ctx.keys)


DEFAULT_ROUTES: tuple[Route, ...] = (
    Route("local", PREFIX, _local_backend),
    Route("openai_compat", _served_openai, _compat_backend),
    Route("litellm", "", _litellm_backend),
)
"""The built-in routes, in the order they are tried; the last one takes every model."""


def _route_table(
    routes: Sequence[Route],
    local: Callable[[], ModelClient] | None,
    remote: Callable[[], ModelClient] | None,
) -> tuple[Route, ...]:
    """``routes`` first, then the defaults not replaced by name (``local``/``remote``
    replace the factories of the local and litellm routes)."""
    overrides = {"local": local, "litellm": remote}
    defaults = tuple(
        Route(r.name, r.match, _ignoring_context(override))
        if (override := overrides.get(r.name)) is not None
        else r
        for r in DEFAULT_ROUTES
    )
    added = tuple(routes)
    names = {r.name for r in added}
    if len(names) != len(added):
        raise ValueError("two added routes share a name")
    return added + tuple(r for r in defaults if r.name not in names)


def _ignoring_context(factory: Callable[[], ModelClient]) -> BackendFactory:
    return lambda _ctx: factory()


class RouterClient:
    """Dispatches each request by model string; creates backends on first use.

    Args:
        options: per-model options for API models (see :func:`pipeline_options`).
        local: factory of the local backend (default: :class:`LocalClient` with
            ``local_resolve`` and ``local_paths``).
        remote: factory of the API backend (default: ``LiteLLMClient(options)``).
        local_resolve: name -> GGUF path for ``local/<name>`` (e.g. pull into the cache).
        local_paths: explicit GGUF paths by name (``"*"`` for every name).
        keys: which keys may go where (default: ``KeyPolicy()``: provider keys to their own
            hosts only; the CLI adds ``--allow-key`` flags and ``keys.toml``).
        http_timeouts: connect and first-byte timeouts of the OpenAI-compatible client.
        routes: more :class:`Route` entries, tried in order before :data:`DEFAULT_ROUTES`
            (one with a default route's name replaces that route).
    """

    def __init__(
        self,
        options: Mapping[str, ModelOptions] | None = None,
        *,
        local: Callable[[], ModelClient] | None = None,
        remote: Callable[[], ModelClient] | None = None,
        local_resolve: Callable[[str], Path] | None = None,
        local_paths: Mapping[str, str | Path] | None = None,
        keys: KeyPolicy | None = None,
        http_timeouts: HttpTimeouts | None = None,
        routes: Sequence[Route] = (),
    ) -> None:
        self._options = dict(options or {})
        self._keys = keys or KeyPolicy()
        self._custom_local = local is not None or any(r.name == "local" for r in routes)
        self._local_resolve = local_resolve
        self._local_paths = {k: Path(v) for k, v in (local_paths or {}).items()}
        self._context = RouteContext(
            options=self._options,
            keys=self._keys,
            http_timeouts=http_timeouts,
            local_resolve=local_resolve,
            local_paths=local_paths,
        )
        self.routes = _route_table(routes, local, remote)
        self._backends: dict[str, ModelClient] = {}
        self._scopes: dict[str, str] = {}

    @classmethod
    def for_pipeline(cls, pipeline: Pipeline, **kwargs: object) -> RouterClient:
        """A router with the options of ``pipeline.models``."""
        return cls(pipeline_options(pipeline), **kwargs)  # type: ignore[arg-type]

    def key_warnings(self) -> tuple[str, ...]:
        """Why keys the pipeline asks for will not be sent (one line per model), read from
        the environment now; the CLI prints these before the first call."""
        return tuple(
            decision.warning
            for model, options in sorted(self._options.items())
            if not model.startswith(PREFIX)
            and (decision := self._keys.decide(model, options)).warning
        )

    def route_for(self, model: str) -> Route:
        """The first route of the table that serves ``model``."""
        options = self._options.get(model)
        for route in self.routes:
            if route.serves(model, options):
                return route
        raise ModelCallError(f"no client serves model '{model}'", model=model)

    def client_for(self, model: str) -> ModelClient:
        """The backend serving ``model`` (created on first use)."""
        route = self.route_for(model)
        backend = self._backends.get(route.name)
        if backend is None:
            backend = self._backends[route.name] = route.factory(self._context)
        return backend

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """Forward to the backend of ``request.model``."""
        return await self.client_for(request.model).complete(request)

    def batches_samples(self, model: str) -> bool:
        """Whether ``model``'s backend takes several samples in one request (``n``)."""
        backend = self.client_for(model)
        return isinstance(backend, MultiSampleClient) and backend.batches_samples(model)

    async def complete_samples(
        self, request: CompletionRequest, seeds: tuple[int, ...]
    ) -> CompletionResponse:
        """Forward a multi-sample request to the backend of ``request.model``."""
        backend = self.client_for(request.model)
        if not isinstance(backend, MultiSampleClient):
            raise ModelCallError(f"{request.model}: its backend cannot batch samples")
        return await backend.complete_samples(request, seeds)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str | CompletionResponse]:
        """Stream from the backend of ``request.model`` when it can stream; otherwise its
        ``complete`` answer is the whole stream (no text pieces, then the response)."""
        backend = self.client_for(request.model)
        if isinstance(backend, StreamingClient):
            async for item in backend.stream(request):
                yield item
        else:
            yield await backend.complete(request)

    async def cache_scope(self, model: str) -> str:
        """Everything besides the request that shapes ``model``'s answers (computed once per
        model): backend and version, endpoint, and the local model file's identity."""
        if model not in self._scopes:
            if model.startswith(PREFIX):
                identity = await asyncio.to_thread(self._local_identity, model)
                self._scopes[model] = f"llama-cpp-python/{_version('llama_cpp_python')} {identity}"
            else:
                backend = self.client_for(model)
                scope = getattr(backend, "cache_scope", None)
                self._scopes[model] = scope(model) if callable(scope) else type(backend).__name__
        return self._scopes[model]

    def _local_identity(self, model: str) -> str:
        name = model.removeprefix(PREFIX)
        path = self._local_paths.get(name) or self._local_paths.get("*")
        if path is None and name.endswith(".gguf"):
            path = Path(name)
        if path is None:
            known = _registry_sha256(name)
            if known is not None:
                return f"sha256:{known}"
            if self._custom_local or self._local_resolve is None:
                return f"model:{name}"
            path = self._local_resolve(name)
        return file_identity(path)

    def price(self, model: str) -> Price | None:
        """User price, else the backend's (local models are free)."""
        options = self._options.get(model)
        if options is not None and options.price is not None:
            return options.price
        if model.startswith(PREFIX):
            return Price(0.0, 0.0)
        backend = self.client_for(model)
        return backend.price(model) if isinstance(backend, PricedClient) else None

    async def aclose(self) -> None:
        """Close the backends that were created."""
        backends, self._backends = self._backends, {}
        for backend in backends.values():
            await backend.aclose()


_HEAD_BYTES = 1 << 20
GGUF_MAGIC = b"GGUF"


def file_identity(path: Path) -> str:
    """A model file's identity without hashing gigabytes: resolved path, size, mtime and
    the sha256 of its first MiB. Raises ModelCallError when it is not a GGUF file."""
    try:
        resolved = path.expanduser().resolve()
        info = resolved.stat()
        with resolved.open("rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError as error:
        raise ModelCallError(f"cannot read model file {path}: {error.strerror or error}") from error
    if not head.startswith(GGUF_MAGIC):
        raise ModelCallError(f"{path} is not a GGUF model file (it does not start with 'GGUF')")
    digest = hashlib.sha256(head).hexdigest()[:16]
    return f"file:{resolved}:{info.st_size}:{info.st_mtime_ns}:{digest}"


def _registry_sha256(name: str) -> str | None:
    from archon.runtime.clients.local.models import KNOWN_MODELS

    return next((m.sha256 for m in KNOWN_MODELS if m.name == name), None)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "missing"
