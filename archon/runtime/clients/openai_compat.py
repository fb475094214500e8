"""``OpenAICompatClient``: a lean, pooled HTTP client for OpenAI-compatible servers.

litellm costs about 4 ms of CPU per call, which caps a single event loop at a few hundred
calls per second -- below what a local vLLM/SGLang/llama.cpp server with continuous batching
can take (see bench/README.md). For ``openai/<name>`` models that have an ``api_base`` the
router uses this client instead: one ``aiohttp.ClientSession`` per endpoint (keep-alive pool) for
the life of the client, a plain JSON POST to ``/chat/completions``, and the same error
classification as the litellm client (429/5xx/timeouts/connection errors are retryable).
``stream`` (the optional ``StreamingClient`` capability) reads the server's SSE chunks.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from archon.runtime.budget import estimate_prompt_tokens
from archon.runtime.clients.base import ModelCallError, ModelOptions, Price
from archon.runtime.secrets import Redactor
from archon.values import Completion, CompletionRequest, CompletionResponse, Usage

_RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
PREFIX = "openai/"


async def _sse_data(content: aiohttp.StreamReader) -> AsyncIterator[str]:
    """The ``data`` of each server-sent event (multi-line data joined by newlines)."""
    lines: list[str] = []
    async for raw in content:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
        elif line.startswith("data:"):
            lines.append(line[5:].removeprefix(" "))
    if lines:
        yield "\n".join(lines)


def _chunk_json(request: CompletionRequest, data: str) -> Mapping[str, Any] | None:
    """One parsed stream chunk; None at ``[DONE]``. An error chunk raises (retryable: the
    server failed mid-answer)."""
    if data.strip() == "[DONE]":
        return None
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError as e:
        raise ModelCallError(
            f"{request.model}: malformed stream chunk", model=request.model, retryable=True
        ) from e
    if not isinstance(chunk, dict):
        raise ModelCallError(f"{request.model}: malformed stream chunk", model=request.model)
    if chunk.get("error"):
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else str(error)
        raise ModelCallError(
            f"{request.model}: error in stream: {str(message)[:500]}",
            model=request.model,
            retryable=True,
        )
    return chunk


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
        return body

    def _endpoint(self, request: CompletionRequest) -> tuple[str, dict[str, str], ModelOptions]:
        """URL, auth headers and options of ``request.model``."""
        options = self._options.get(request.model, ModelOptions())
        if not options.api_base:
            raise ModelCallError(f"{request.model}: no api_base configured", model=request.model)
        key = (
            options.api_key
            or (os.environ.get(options.api_key_env) if options.api_key_env else None)
            or os.environ.get("OPENAI_API_KEY")
        )
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return options.api_base.rstrip("/") + "/chat/completions", headers, options

    def _connection_error(self, request: CompletionRequest, e: BaseException) -> ModelCallError:
        return ModelCallError(
            self._redact(f"{request.model}: {type(e).__name__}: {e}"),
            model=request.model,
            retryable=True,
        )

    def _status_error(
        self, request: CompletionRequest, status: int, text: str, retry_after: str | None
    ) -> ModelCallError:
        return ModelCallError(
            self._redact(f"{request.model}: HTTP {status}: {text}"),
            model=request.model,
            retryable=status in _RETRYABLE_STATUS,
            status=status,
            retry_after_s=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """POST one chat completion; errors become classified ModelCallErrors."""
        url, headers, options = self._endpoint(request)
        try:
            async with self._client().post(url, json=self.body(request), headers=headers) as reply:
                status = reply.status
                retry_after = reply.headers.get("retry-after")
                if status >= 400:
                    text = (await reply.text())[:500]
                else:
                    data: dict[str, Any] = await reply.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise self._connection_error(request, e) from e
        if status >= 400:
            raise self._status_error(request, status, text, retry_after)
        choice = data["choices"][0]
        usage = self._usage(data.get("usage") or {}, options)
        completion = Completion(
            text=(choice.get("message") or {}).get("content") or "",
            logprob=_mean_logprob(choice) if request.logprobs else None,
            finish_reason=choice.get("finish_reason"),
        )
        return CompletionResponse(completions=(completion,), usage=usage)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str | CompletionResponse]:
        """POST one chat completion with ``stream: true``; yield the text pieces of the
        server's SSE chunks, then the response (usage from the server's final chunk, asked
        for with ``stream_options.include_usage``; estimated when the server sends none)."""
        url, headers, options = self._endpoint(request)
        body = {**self.body(request), "stream": True, "stream_options": {"include_usage": True}}
        pieces: list[str] = []
        usage_data: Mapping[str, Any] = {}
        finish: str | None = None
        try:
            async with self._client().post(url, json=body, headers=headers) as reply:
                if reply.status >= 400:
                    text = (await reply.text())[:500]
                    raise self._status_error(
                        request, reply.status, text, reply.headers.get("retry-after")
                    )
                async for data in _sse_data(reply.content):
                    chunk = _chunk_json(request, data)
                    if chunk is None:
                        break
                    usage_data = chunk.get("usage") or usage_data
                    for choice in chunk.get("choices") or ():
                        finish = choice.get("finish_reason") or finish
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            pieces.append(piece)
                            yield piece
        except (aiohttp.ClientError, TimeoutError) as e:
            raise self._connection_error(request, e) from e
        text = "".join(pieces)
        if not usage_data:
            usage_data = {
                "prompt_tokens": estimate_prompt_tokens(request.messages),
                "completion_tokens": len(pieces),
            }
        completion = Completion(text=text, finish_reason=finish)
        usage = self._usage(usage_data, options)
        yield CompletionResponse(completions=(completion,), usage=usage)

    @staticmethod
    def _usage(raw: Mapping[str, Any], options: ModelOptions) -> Usage:
        usage = Usage(
            calls=1,
            prompt_tokens=int(raw.get("prompt_tokens") or 0),
            completion_tokens=int(raw.get("completion_tokens") or 0),
        )
        if options.price is not None:
            usage = usage.model_copy(update={"usd": options.price.cost(usage)})
        return usage

    def price(self, model: str) -> Price | None:
        """The user price of ``model`` (self-hosted servers have no price table)."""
        options = self._options.get(model)
        return options.price if options is not None else None

    async def aclose(self) -> None:
        """Close the pooled connections."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()
