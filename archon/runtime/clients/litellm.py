"""``LiteLLMClient``: API models through litellm -- the only module that imports litellm.

Model strings pass through unchanged (``openai/gpt-4o-mini``, ``anthropic/...``,
``together_ai/...``, ``hosted_vllm/...``, ``openai/<name>`` with an ``api_base`` for any
OpenAI-compatible server). Keys follow :class:`~archon.runtime.clients.keys.KeyPolicy`: without an
``api_base`` litellm picks the provider's own variable for the provider's own host; with one,
the key is always passed explicitly -- the confirmed one, or a placeholder -- so litellm never
sends ``OPENAI_API_KEY`` to a server a ``.pipe`` file named. Keys never reach logs, traces,
the cache or error messages. A reply without choices becomes a :class:`ModelCallError`.
litellm's own retries are off (``num_retries=0``): retries, backoff and timeouts belong to
:class:`~archon.runtime.limits.Limits`, which this client feeds by marking rate limits, 5xx,
timeouts and connection errors as retryable. litellm keeps one pooled HTTP
client per provider endpoint for the whole process (its in-memory client cache), so no client
is built per call. Costs come from user prices, else litellm's bundled price table
(``LITELLM_LOCAL_MODEL_COST_MAP=True``: no price map is fetched at import).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from importlib import metadata
from types import ModuleType
from typing import Any

from archon.ir import model_option_problem
from archon.runtime.clients.base import (
    AUTH_STATUS,
    RETRYABLE_STATUS,
    ModelCallError,
    ModelOptions,
    Price,
)
from archon.runtime.clients.credentials import Credentials
from archon.runtime.clients.keys import KeyDecision, KeyPolicy, normalise_api_base
from archon.runtime.clients.translate import Dialect, chat_arguments, reply_text
from archon.runtime.secrets import Redactor
from archon.values import Completion, CompletionRequest, CompletionResponse, Usage

logger = logging.getLogger(__name__)

INSTALL_HINT = "litellm is not installed: pip install litellm (a dependency of archon-pipe)"
_OWN_OPTIONS = frozenset({"api_base", "api_key", "api_key_env"})
NO_KEY = "no-key"
"""Sent as ``api_key`` to a custom ``api_base`` that gets no real key (litellm would otherwise
fill in the provider's variable, e.g. ``OPENAI_API_KEY``)."""
DIALECT = Dialect(fixed=(("num_retries", 0), ("drop_params", True)))
"""litellm takes the model string unchanged; its own retries are off and arguments a provider
does not know are dropped."""


def import_litellm() -> ModuleType:
    """Import litellm lazily (it takes seconds), without fetching a remote price map."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError as e:
        raise ModelCallError(INSTALL_HINT) from e
    litellm.suppress_debug_info = True
    return litellm


def _retryable(litellm: ModuleType, error: Exception) -> tuple[bool, int | None]:
    status = getattr(error, "status_code", None)
    status = status if isinstance(status, int) else None
    transient = tuple(
        getattr(litellm, name)
        for name in (
            "RateLimitError",
            "Timeout",
            "APIConnectionError",
            "InternalServerError",
            "ServiceUnavailableError",
            "BadGatewayError",
        )
        if hasattr(litellm, name)
    )
    if isinstance(error, (*transient, TimeoutError, ConnectionError)):
        return True, status
    return status in RETRYABLE_STATUS, status


def _retry_after(error: Exception) -> float | None:
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _mean_logprob(choice: Any) -> float | None:
    logprobs = getattr(choice, "logprobs", None)
    if logprobs is None and isinstance(choice, dict):
        logprobs = choice.get("logprobs")
    if logprobs is None:
        return None
    content = logprobs.get("content") if isinstance(logprobs, dict) else logprobs.content
    values = [
        (t.get("logprob") if isinstance(t, dict) else getattr(t, "logprob", None))
        for t in content or ()
    ]
    numbers = [float(v) for v in values if v is not None]
    return sum(numbers) / len(numbers) if numbers else None


class LiteLLMClient:
    """A :class:`~archon.runtime.clients.base.ModelClient` for every litellm provider.

    Args:
        options: per-model options keyed by model string (api_base, keys, prices, extras).
        redactor: redacts error messages (default: from the environment when first needed).
        keys: which keys may go where (default: none confirmed, only provider hosts).
        litellm: the litellm module to call (default: imported on first use); tests pass a
            stand-in with ``acompletion``, the exception classes and ``completion_cost``.

    Example:
        >>> client = LiteLLMClient({"openai/local": ModelOptions(api_base="http://h:8000/v1")})
    """

    def __init__(
        self,
        options: Mapping[str, ModelOptions] | None = None,
        *,
        redactor: Redactor | None = None,
        keys: KeyPolicy | None = None,
        litellm: ModuleType | None = None,
    ) -> None:
        self._options = dict(options or {})
        self._credentials = Credentials(self._options, keys, redactor)
        self._litellm = litellm

    def _lib(self) -> ModuleType:
        if self._litellm is None:
            self._litellm = import_litellm()
        return self._litellm

    def _redact(self, text: str) -> str:
        return self._credentials.redact(text)

    def key_decision(self, model: str) -> KeyDecision:
        """Which key requests for ``model`` carry (decided once, on first use)."""
        return self._credentials.decision(model)

    def cache_scope(self, model: str) -> str:
        """What besides the request shapes ``model``'s answers: litellm's version, the
        endpoint and the extra provider options."""
        options = self._options.get(model, ModelOptions())
        endpoint = normalise_api_base(options.api_base) if options.api_base else "default"
        extra = ",".join(f"{k}={v!r}" for k, v in options.extra)
        return f"litellm/{_litellm_version()} {endpoint} {extra}".rstrip()

    def kwargs(self, request: CompletionRequest) -> dict[str, Any]:
        """The litellm ``acompletion`` arguments for one sample of ``request``."""
        options = self._options.get(request.model, ModelOptions())
        kwargs = chat_arguments(request, DIALECT)
        # Options that could redirect a request or carry a credential never pass through.
        kwargs.update(
            (name, value)
            for name, value in options.extra
            if name not in _OWN_OPTIONS and model_option_problem(name, value) is None
        )
        decision = self.key_decision(request.model)
        if options.api_base:
            kwargs["api_base"] = options.api_base
            kwargs["api_key"] = decision.key or NO_KEY
        elif decision.key:
            kwargs["api_key"] = decision.key
        return kwargs

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """One sample through ``litellm.acompletion``; provider errors become ModelCallError."""
        litellm = self._lib()
        try:
            response = await litellm.acompletion(**self.kwargs(request))
        except Exception as e:
            retryable, status = _retryable(litellm, e)
            hint = self.key_decision(request.model).auth_hint() if status in AUTH_STATUS else ""
            message = self._redact(f"{request.model}: {type(e).__name__}: {e}{hint}")
            raise ModelCallError(
                message,
                model=request.model,
                retryable=retryable,
                status=status,
                retry_after_s=_retry_after(e),
            ) from e
        return self._response(litellm, request, response)

    def _response(
        self, litellm: ModuleType, request: CompletionRequest, response: Any
    ) -> CompletionResponse:
        choices = getattr(response, "choices", None)
        choice = choices[0] if isinstance(choices, list | tuple) and choices else None
        message = getattr(choice, "message", None)
        text = getattr(message, "content", None)
        if choice is None or message is None or not isinstance(text, str | None):
            shown = self._redact(" ".join(repr(response).split())[:300])
            raise ModelCallError(
                f"{request.model}: the provider did not send a chat completion"
                f" ({'no choices' if choice is None else 'no message text'}); it sent: {shown}",
                model=request.model,
            )
        text = text or ""
        raw = getattr(response, "usage", None)
        usage = Usage(
            calls=1,
            prompt_tokens=int(getattr(raw, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(raw, "completion_tokens", 0) or 0),
        )
        price = self.price(request.model, lookup_table=False)
        if price is not None:
            usd = price.cost(usage)
        else:
            try:
                usd = float(litellm.completion_cost(completion_response=response))
            except Exception:  # unknown model in the price table: cost unknown, not an error
                logger.debug("no litellm price for %s", request.model)
                usd = 0.0
        finish_reason = getattr(choice, "finish_reason", None)
        completion = Completion(
            text=reply_text(request, text, finish_reason),
            logprob=_mean_logprob(choice) if request.logprobs else None,
            finish_reason=finish_reason,
        )
        return CompletionResponse(
            completions=(completion,), usage=usage.model_copy(update={"usd": usd})
        )

    def price(self, model: str, *, lookup_table: bool = True) -> Price | None:
        """User price for ``model``, else litellm's price table entry, else None."""
        options = self._options.get(model)
        if options is not None and options.price is not None:
            return options.price
        if not lookup_table:
            return None
        table = getattr(self._lib(), "model_cost", {})
        entry = table.get(model) or table.get(model.split("/", 1)[-1])
        if not entry or "input_cost_per_token" not in entry:
            return None
        return Price(
            float(entry.get("input_cost_per_token") or 0.0),
            float(entry.get("output_cost_per_token") or 0.0),
        )

    async def aclose(self) -> None:
        """Close litellm's pooled async HTTP clients, if it was used."""
        if self._litellm is None:
            return
        close = getattr(self._litellm, "close_litellm_async_clients", None)
        if close is not None:
            try:
                await close()
            except Exception:  # closing is best effort at shutdown
                logger.debug("closing litellm clients failed", exc_info=True)


def _litellm_version() -> str:
    """litellm's installed version, read from its metadata (without importing it)."""
    try:
        return metadata.version("litellm")
    except metadata.PackageNotFoundError:
        return "missing"
