"""The model-client contract: one small protocol every backend implements.

A client answers **one sample** per call: the runtime splits a request for ``n`` samples into
``n`` requests with ``n=1`` (each with its own derived seed) so that every sample is cached,
budgeted, retried and traced on its own. Clients never retry, sleep for backoff or limit
concurrency themselves: :mod:`archon.runtime.limits` does that, in one place. A client
signals a failure by raising :class:`ModelCallError`, saying whether retrying may help.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from archon.errors import ArchonError
from archon.values import CompletionRequest, CompletionResponse, Usage

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
"""HTTP statuses a later attempt may get past: timeouts, conflicts, rate limits, server errors
(529: overloaded). Every other 4xx -- a bad request, authentication, an unknown model -- is not."""
AUTH_STATUS = frozenset({401, 403})
"""HTTP statuses of a refused or missing key (the error then says which key went, if any)."""
LOCAL_SEQUENCES = 8
"""Sequences one embedded model decodes together (``n_seq_max`` of its llama.cpp context);
:class:`~archon.runtime.limits.Limits` gives local models this many slots by default."""


class ModelCallError(ArchonError):
    """A model call failed. ``retryable`` says whether the same call may succeed later.

    Rate limits, server errors (5xx), timeouts and dropped connections are retryable;
    bad requests, authentication and unknown models are not.
    """

    def __init__(
        self,
        message: str,
        *,
        model: str = "",
        retryable: bool = False,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.model = model
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s


class RetriesExhausted(ModelCallError):
    """A retryable failure persisted through every attempt the limits allow."""


@dataclass(frozen=True)
class Price:
    """USD per prompt token and per completion token of one model."""

    prompt_usd_per_token: float
    completion_usd_per_token: float

    @classmethod
    def per_million(cls, prompt: float, completion: float) -> Price:
        """A price given in USD per million tokens (how providers publish them)."""
        return cls(prompt / 1e6, completion / 1e6)

    def cost(self, usage: Usage) -> float:
        """The cost of ``usage`` at this price."""
        return (
            usage.prompt_tokens * self.prompt_usd_per_token
            + usage.completion_tokens * self.completion_usd_per_token
        )


@runtime_checkable
class ModelClient(Protocol):
    """A backend that answers single-sample completion requests.

    Invariants: ``complete`` receives ``request.n == 1``; it returns exactly one completion
    with the usage (and cost in ``usage.usd`` when known) of that one call; it raises
    :class:`ModelCallError` (never a provider exception) on failure; it is safe to call
    concurrently from one event loop. ``aclose`` releases pooled connections or models.
    """

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """Answer one sample of ``request``."""
        ...

    async def aclose(self) -> None:
        """Release resources (connections, loaded models)."""
        ...


@runtime_checkable
class MultiSampleClient(Protocol):
    """Optional: a client that can answer several samples of one prompt in ONE request.

    OpenAI-compatible servers with continuous batching (vLLM, SGLang) share the prompt's
    prefill across the ``n`` choices of one request, so the runtime sends the samples of one
    node as one request where :meth:`batches_samples` says so, and splits the choices back
    into per-sample results for the cache, the budget and the trace.
    """

    def batches_samples(self, model: str) -> bool:
        """Whether samples of ``model`` should go as one request with ``n``."""
        ...

    async def complete_samples(
        self, request: CompletionRequest, seeds: tuple[int, ...]
    ) -> CompletionResponse:
        """``len(seeds)`` samples of ``request`` (whose ``n`` is ignored), in seed order.

        Returns exactly ``len(seeds)`` completions and the usage of everything sent, counted
        once. A server that ignores ``n`` is completed with single-sample requests.
        """
        ...


@runtime_checkable
class PricedClient(Protocol):
    """Optional: a client that knows model prices ahead of a call (for USD budgets)."""

    def price(self, model: str) -> Price | None:
        """The price of ``model`` or None when unknown."""
        ...


@runtime_checkable
class StreamingClient(Protocol):
    """Optional: a client that can pass on one sample's text while it is being generated.

    ``stream(request)`` yields the text in pieces as they arrive, then exactly one
    :class:`~archon.values.CompletionResponse` for the whole call -- what ``complete`` would
    have returned: the full text (the pieces joined) and the call's usage. The rules of
    ``complete`` hold: ``request.n == 1``, failures raise :class:`ModelCallError`, no retries.
    The runtime streams only where asked to (``archon serve`` taps the call that writes the
    answer) and still caches, meters and traces the call from the final response.
    """

    def stream(self, request: CompletionRequest) -> AsyncIterator[str | CompletionResponse]:
        """Text pieces of one sample of ``request``, then its final response."""
        ...


@dataclass(frozen=True)
class ModelOptions:
    """Per-model provider options (from a ``models { ... }`` block or given in Python).

    Attributes:
        api_base: endpoint of an OpenAI-compatible or self-hosted server.
        api_key: a key given in Python (never from a ``.pipe`` file; never logged or cached).
        api_key_env: name of the environment variable holding the key.
        price: USD prices, overriding the provider's price table.
        extra: further provider arguments passed through unchanged.
    """

    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str | None = None
    price: Price | None = None
    extra: tuple[tuple[str, object], ...] = ()
