"""``RouterClient``: ``local/...`` models to the local client, every other model to litellm.

Each backend is created lazily on its first call, so a pipeline that only uses API models never
imports llama-cpp-python and one that only uses local models never imports litellm. Per-model
options (``api_base``, ``api_key_env``, prices) come from the pipeline's ``models`` block:

.. code-block:: text

    models {
      judge = "openai/my-model" (api_base = "http://127.0.0.1:8000/v1",
                                 api_key_env = "MY_SERVER_KEY",
                                 usd_per_mtok_in = 0.15, usd_per_mtok_out = 0.6)
    }

A literal ``api_key`` in a ``.pipe`` file is refused: keys come from the environment.

Which path a model string takes:

* ``local/<name>`` -> :class:`~archon.runtime.clients.local.LocalClient` (llama-cpp-python);
* ``openai/<name>`` with an ``api_base`` -> :class:`OpenAICompatClient` (lean pooled aiohttp:
  self-hosted vLLM / SGLang / llama.cpp servers, where per-call CPU cost matters);
* everything else -> :class:`~archon.runtime.clients.litellm.LiteLLMClient`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

from archon.errors import ArchonError
from archon.ir import ModelSpec, Pipeline
from archon.runtime.clients.base import (
    ModelClient,
    ModelOptions,
    Price,
    PricedClient,
    StreamingClient,
)
from archon.runtime.clients.local import PREFIX, LocalClient
from archon.values import CompletionRequest, CompletionResponse

_PRICE_IN = ("usd_per_mtok_in", "input_usd_per_mtok")
_PRICE_OUT = ("usd_per_mtok_out", "output_usd_per_mtok")


def options_from_spec(spec: ModelSpec) -> ModelOptions:
    """Provider options of one ``models`` entry."""
    values = {p.name: p.value for p in spec.options}
    if "api_key" in values:
        raise ArchonError(
            f"model '{spec.alias}': do not write API keys in .pipe files; put the key in an"
            ' environment variable and name it with api_key_env = "MY_KEY_VAR"'
        )
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


class RouterClient:
    """Dispatches each request by model string; creates backends on first use.

    Args:
        options: per-model options for API models (see :func:`pipeline_options`).
        local: factory of the local backend (default: :class:`LocalClient` with
            ``local_resolve`` and ``local_paths``).
        remote: factory of the API backend (default: ``LiteLLMClient(options)``).
        local_resolve: name -> GGUF path for ``local/<name>`` (e.g. pull into the cache).
        local_paths: explicit GGUF paths by name (``"*"`` for every name).
    """

    def __init__(
        self,
        options: Mapping[str, ModelOptions] | None = None,
        *,
        local: Callable[[], ModelClient] | None = None,
        remote: Callable[[], ModelClient] | None = None,
        local_resolve: Callable[[str], Path] | None = None,
        local_paths: Mapping[str, str | Path] | None = None,
    ) -> None:
        self._options = dict(options or {})
        self._local_factory = local or (lambda: LocalClient(local_resolve, paths=local_paths))
        self._remote_factory = remote or self._default_remote
        self._local: ModelClient | None = None
        self._remote: ModelClient | None = None
        self._compat: ModelClient | None = None

    @classmethod
    def for_pipeline(cls, pipeline: Pipeline, **kwargs: object) -> RouterClient:
        """A router with the options of ``pipeline.models``."""
        return cls(pipeline_options(pipeline), **kwargs)  # type: ignore[arg-type]

    def _default_remote(self) -> ModelClient:
        from archon.runtime.clients.litellm import LiteLLMClient

        return LiteLLMClient(self._options)

    def client_for(self, model: str) -> ModelClient:
        """The backend serving ``model`` (created on first use)."""
        if model.startswith(PREFIX):
            if self._local is None:
                self._local = self._local_factory()
            return self._local
        options = self._options.get(model)
        if model.startswith("openai/") and options is not None and options.api_base:
            if self._compat is None:
                from archon.runtime.clients.openai_compat import OpenAICompatClient

                self._compat = OpenAICompatClient(self._options)
            return self._compat
        if self._remote is None:
            self._remote = self._remote_factory()
        return self._remote

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """Forward to the backend of ``request.model``."""
        return await self.client_for(request.model).complete(request)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str | CompletionResponse]:
        """Stream from the backend of ``request.model`` when it can stream; otherwise its
        ``complete`` answer is the whole stream (no text pieces, then the response)."""
        backend = self.client_for(request.model)
        if isinstance(backend, StreamingClient):
            async for item in backend.stream(request):
                yield item
        else:
            yield await backend.complete(request)

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
        for backend in (self._local, self._remote, self._compat):
            if backend is not None:
                await backend.aclose()
        self._local = self._remote = self._compat = None
