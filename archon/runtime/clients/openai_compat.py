"""``OpenAICompatClient``: a lean, pooled HTTP client for OpenAI-compatible servers.

litellm costs about 4 ms of CPU per call, which caps a single event loop at a few hundred
calls per second -- below what a local vLLM/SGLang/llama.cpp server with continuous batching
can take (see bench/README.md). For ``openai/<name>`` models that have an ``api_base`` the
router uses this client instead: one ``httpx.AsyncClient`` per endpoint (keep-alive pool) for
the life of the client, a plain JSON POST to ``/chat/completions``, and the same error
classification as the litellm client (429/5xx/timeouts/connection errors are retryable).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import aiohttp

from archon.runtime.clients.base import ModelCallError, ModelOptions, Price
from archon.runtime.secrets import Redactor
from archon.values import Completion, CompletionRequest, CompletionResponse, Usage

_RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
PREFIX = "openai/"


def _mean_logprob(choice: Mapping[str, Any]) -> float | None:
    content = (choice.get("logprobs") or {}).get("content") or ()
    values = [float(t["logprob"]) for t in content if t.get("logprob") is not None]
    return sum(values) / len(values) if values else None


class OpenAICompatClient:
    """A :class:`~archon.runtime.clients.base.ModelClient` for ``openai/<name>`` + api_base.

    Args:
        options: per-model options; each model used must have an ``api_base``.
        max_connections: size of each endpoint's connection pool.
    """

    def __init__(self, options: Mapping[str, ModelOptions], *, max_connections: int = 256) -> None:
        self._options = dict(options)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._redactor: Redactor | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    def _redact(self, text: str) -> str:
        if self._redactor is None:
            keys = [o.api_key for o in self._options.values() if o.api_key]
            self._redactor = Redactor.from_environ(extra=keys)
        return self._redactor.redact(text)

    def body(self, request: CompletionRequest) -> dict[str, Any]:
        """The JSON body of one sample of ``request``."""
        body: dict[str, Any] = {
            "model": request.model.removeprefix(PREFIX),
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        for name in ("temperature", "top_p", "max_tokens", "seed"):
            value = getattr(request, name)
            if value is not None:
                body[name] = value
        if request.stop:
            body["stop"] = list(request.stop)
        if request.logprobs:
            body["logprobs"] = True
        if request.assistant_prefix is not None:
            # Continue the partial answer: a trailing assistant message, continued in place
            # (vLLM's flags; llama.cpp's server continues a trailing assistant turn natively).
            body["messages"].append({"role": "assistant", "content": request.assistant_prefix})
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        return body

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """POST one chat completion; errors become classified ModelCallErrors."""
        options = self._options.get(request.model, ModelOptions())
        if not options.api_base:
            raise ModelCallError(f"{request.model}: no api_base configured", model=request.model)
        key = (
            options.api_key
            or (os.environ.get(options.api_key_env) if options.api_key_env else None)
            or os.environ.get("OPENAI_API_KEY")
        )
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        url = options.api_base.rstrip("/") + "/chat/completions"
        try:
            async with self._client().post(url, json=self.body(request), headers=headers) as reply:
                status = reply.status
                retry_after = reply.headers.get("retry-after")
                if status >= 400:
                    text = (await reply.text())[:500]
                else:
                    data: dict[str, Any] = await reply.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise ModelCallError(
                self._redact(f"{request.model}: {type(e).__name__}: {e}"),
                model=request.model,
                retryable=True,
            ) from e
        if status >= 400:
            raise ModelCallError(
                self._redact(f"{request.model}: HTTP {status}: {text}"),
                model=request.model,
                retryable=status in _RETRYABLE_STATUS,
                status=status,
                retry_after_s=float(retry_after) if retry_after and retry_after.isdigit() else None,
            )
        choice = data["choices"][0]
        raw = data.get("usage") or {}
        usage = Usage(
            calls=1,
            prompt_tokens=int(raw.get("prompt_tokens") or 0),
            completion_tokens=int(raw.get("completion_tokens") or 0),
        )
        if options.price is not None:
            usage = usage.model_copy(update={"usd": options.price.cost(usage)})
        completion = Completion(
            text=(choice.get("message") or {}).get("content") or "",
            logprob=_mean_logprob(choice) if request.logprobs else None,
            finish_reason=choice.get("finish_reason"),
        )
        return CompletionResponse(completions=(completion,), usage=usage)

    def price(self, model: str) -> Price | None:
        """The user price of ``model`` (self-hosted servers have no price table)."""
        options = self._options.get(model)
        return options.price if options is not None else None

    async def aclose(self) -> None:
        """Close the pooled connections."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()
