"""``OpenAICompatClient``: a lean, pooled HTTP client for OpenAI-compatible servers.

litellm costs about 4 ms of CPU per call, which caps a single event loop at a few hundred
calls per second -- below what a local vLLM/SGLang/llama.cpp server with continuous batching
can take (see bench/README.md). For ``openai/<name>`` models that have an ``api_base`` the
router uses this client instead: one pooled ``aiohttp`` session for the life of the client,
a plain JSON POST to ``/chat/completions``, and the same error classification as the litellm
client (429/5xx/timeouts/connection errors are retryable). ``stream`` (the optional
``StreamingClient`` capability) reads the server's SSE chunks, and ``complete_samples`` (the
optional ``MultiSampleClient`` capability) asks for several samples in one request with
``n``, completing with single requests when the server ignores ``n``.

Keys follow :class:`~archon.runtime.clients.keys.KeyPolicy`: a ``.pipe`` file's ``api_base`` gets a
key only when the user confirmed it. A reply that is not a chat completion (invalid JSON, no
``choices``) becomes a :class:`ModelCallError` quoting what the server sent, truncated and
redacted. Connecting and the first byte of the reply have their own, shorter timeouts
(:class:`HttpTimeouts`), so an unreachable or silent server fails fast.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import aiohttp

from archon.runtime.budget import estimate_prompt_tokens
from archon.runtime.clients.base import (
    AUTH_STATUS,
    RETRYABLE_STATUS,
    ModelCallError,
    ModelOptions,
    Price,
)
from archon.runtime.clients.code_stop import CodeStream
from archon.runtime.clients.credentials import Credentials
from archon.runtime.clients.keys import KeyDecision, KeyPolicy, normalise_api_base
from archon.runtime.clients.translate import Dialect, chat_arguments, mean_logprob, reply_text
from archon.values import Completion, CompletionRequest, CompletionResponse, Usage

PREFIX = "openai/"
DIALECT = Dialect(strip_prefix=PREFIX)
"""The server is asked for the model name after ``openai/``."""
BACKEND = "openai-compat/1"
"""Names this client in cache keys; bump it when a change could alter answers."""
_SNIPPET = 300  # characters of a bad reply quoted in errors


@dataclass(frozen=True)
class HttpTimeouts:
    """Per-request socket timeouts (the whole attempt is bounded by ``Limits.timeout_s``).

    Attributes:
        connect_s: to open the TCP connection.
        first_byte_s: to wait for the server's next bytes, the reply's first byte included
            (a non-streamed completion sends nothing until it is done). None: no limit.
    """

    connect_s: float = 10.0
    first_byte_s: float | None = None

    @classmethod
    def for_total(cls, total_s: float | None) -> HttpTimeouts:
        """Timeouts inside a total of ``total_s`` per attempt: connect within a quarter of
        it (at most 10 s), then the reply must start within what is left."""
        if total_s is None:
            return cls()
        connect = min(10.0, total_s / 4)
        return cls(connect_s=connect, first_byte_s=max(total_s - connect, 0.001))

    def client_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=None, sock_connect=self.connect_s, sock_read=self.first_byte_s
        )


class _Malformed(Exception):
    """Internal: the reply parsed, but is not a chat completion."""


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


class OpenAICompatClient:
    """A :class:`~archon.runtime.clients.base.ModelClient` for ``openai/<name>`` + api_base.

    Args:
        options: per-model options; each model used must have an ``api_base``.
        max_connections: size of each endpoint's connection pool.
        keys: which keys may go where (default: none confirmed, only provider hosts).
        timeouts: connect and first-byte timeouts.
    """

    def __init__(
        self,
        options: Mapping[str, ModelOptions],
        *,
        max_connections: int = 256,
        keys: KeyPolicy | None = None,
        timeouts: HttpTimeouts | None = None,
    ) -> None:
        self._options = dict(options)
        self._max_connections = max_connections
        self._credentials = Credentials(self._options, keys)
        self._timeouts = timeouts or HttpTimeouts()
        self._ignores_n: set[str] = set()  # models whose server answered n > 1 with fewer
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    def _redact(self, text: str) -> str:
        return self._credentials.redact(text)

    def key_decision(self, model: str) -> KeyDecision:
        """Which key requests for ``model`` carry (decided once, on first use)."""
        return self._credentials.decision(model)

    def body(self, request: CompletionRequest) -> dict[str, Any]:
        """The JSON body of one sample of ``request``."""
        body = chat_arguments(request, DIALECT)
        if request.assistant_prefix is not None:
            # Continue the partial answer: a trailing assistant message, continued in place
            # (vLLM's flags; llama.cpp's server continues a trailing assistant turn natively).
            body["messages"].append({"role": "assistant", "content": request.assistant_prefix})
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        return body

    def _endpoint(self, request: CompletionRequest) -> tuple[str, dict[str, str], ModelOptions]:
        """URL, auth headers (by the key policy) and options of ``request.model``."""
        options = self._options.get(request.model, ModelOptions())
        if not options.api_base:
            raise ModelCallError(f"{request.model}: no api_base configured", model=request.model)
        decision = self.key_decision(request.model)
        headers = {"Authorization": f"Bearer {decision.key}"} if decision.key else {}
        return options.api_base.rstrip("/") + "/chat/completions", headers, options

    def _transport_failure(self, request: CompletionRequest, e: BaseException) -> ModelCallError:
        return ModelCallError(
            self._redact(f"{request.model}: {_transport_error(e)}"),
            model=request.model,
            retryable=True,
        )

    def _status_failure(
        self, request: CompletionRequest, status: int, text: str, retry_after: str | None
    ) -> ModelCallError:
        hint = self.key_decision(request.model).auth_hint() if status in AUTH_STATUS else ""
        return ModelCallError(
            self._redact(f"{request.model}: HTTP {status}: {_snippet(text)}{hint}"),
            model=request.model,
            retryable=status in RETRYABLE_STATUS,
            status=status,
            retry_after_s=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )

    def _send(
        self, url: str, headers: Mapping[str, str], body: Mapping[str, Any]
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """The pooled POST of ``body`` to ``url`` (enter it to get the reply)."""
        return self._client().post(
            url,
            json=body,
            headers=headers,
            timeout=self._timeouts.client_timeout(),
            # A redirect could carry the Authorization header to a host nobody confirmed.
            allow_redirects=False,
        )

    async def _post(self, request: CompletionRequest, body: dict[str, Any]) -> Any:
        """POST ``body``; the parsed JSON reply, or a classified ModelCallError."""
        url, headers, options = self._endpoint(request)
        try:
            async with self._send(url, headers, body) as reply:
                status = reply.status
                retry_after = reply.headers.get("retry-after")
                location = reply.headers.get("location", "")
                raw_body = await reply.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            raise self._transport_failure(request, e) from e
        text = raw_body.decode("utf-8", errors="replace")
        if 300 <= status < 400:
            raise ModelCallError(
                self._redact(
                    f"{request.model}: HTTP {status}: the server redirects to {location!r};"
                    " redirects are not followed (set api_base to the final URL)"
                ),
                model=request.model,
                status=status,
            )
        if status >= 400:
            raise self._status_failure(request, status, text, retry_after)
        try:
            return json.loads(text)
        except ValueError:
            raise self._malformed(request, options, "invalid JSON", text, status) from None

    def _malformed(
        self, request: CompletionRequest, options: ModelOptions, reason: str, text: str, status: int
    ) -> ModelCallError:
        return ModelCallError(
            self._redact(
                f"{request.model}: the server at {options.api_base} did not send a chat"
                f" completion ({reason}); it sent: {_snippet(text)}"
            ),
            model=request.model,
            status=status,
        )

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """POST one chat completion; errors become classified ModelCallErrors."""
        data = await self._post(request, self.body(request))
        options = self._options.get(request.model, ModelOptions())
        try:
            return _completion(data, request, options)
        except _Malformed as e:
            raise self._malformed(request, options, str(e), json.dumps(data), 200) from None

    def batches_samples(self, model: str) -> bool:
        """Samples go as one request with ``n`` unless the server showed it ignores ``n``."""
        return model not in self._ignores_n

    async def complete_samples(
        self, request: CompletionRequest, seeds: tuple[int, ...]
    ) -> CompletionResponse:
        """``len(seeds)`` samples in one request with ``n`` (and the first seed). Choices the
        server did not send (it ignores ``n``, as llama.cpp's server may) are asked for one
        by one with their own seeds, and the model is remembered as one that ignores ``n``.
        """
        k = len(seeds)
        body = {**self.body(request.model_copy(update={"seed": seeds[0]})), "n": k}
        try:
            data = await self._post(request, body)
        except ModelCallError as error:
            if error.status not in (400, 422):
                raise
            # The server refuses n > 1 itself: ask for the samples one by one from now on.
            self._ignores_n.add(request.model)
            return await self._one_by_one(request, seeds)
        options = self._options.get(request.model, ModelOptions())
        try:
            first = _completions(data, request, options)
        except _Malformed as e:
            raise self._malformed(request, options, str(e), json.dumps(data), 200) from None
        got = first.completions[:k]
        if len(got) == k:
            return first.model_copy(update={"completions": got})
        self._ignores_n.add(request.model)
        rest = await self._one_by_one(request, seeds[len(got) :])
        return CompletionResponse(
            completions=got + rest.completions, usage=first.usage + rest.usage
        )

    async def _one_by_one(
        self, request: CompletionRequest, seeds: tuple[int, ...]
    ) -> CompletionResponse:
        """One single-sample request per seed, concurrently; usage summed."""
        replies = await asyncio.gather(
            *(self.complete(request.model_copy(update={"seed": s})) for s in seeds)
        )
        return CompletionResponse(
            completions=tuple(r.completions[0] for r in replies),
            usage=sum((r.usage for r in replies), Usage()),
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str | CompletionResponse]:
        """POST one chat completion with ``stream: true``; yield the text pieces of the
        server's SSE chunks, then the response (usage from the server's final chunk, asked
        for with ``stream_options.include_usage``; estimated when the server sends none).

        A ``stop_after_code`` stream ends once its first code block is closed (the
        connection is dropped, so the server stops generating); one whose closing fence the
        stop sequence removed gets it back as a last piece."""
        url, headers, options = self._endpoint(request)
        body = {**self.body(request), "stream": True, "stream_options": {"include_usage": True}}
        code = CodeStream(request.assistant_prefix or "") if request.stop_after_code else None
        pieces: list[str] = []
        received = 0  # content chunks: about one token each
        usage_data: Mapping[str, Any] = {}
        finish: str | None = None
        try:
            async with self._send(url, headers, body) as reply:
                if reply.status >= 300:
                    text = (await reply.text())[:500]
                    raise self._status_failure(
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
                            received += 1
                            piece = code.take(piece) if code is not None else piece
                        if piece:
                            pieces.append(piece)
                            yield piece
                    if code is not None and code.closed:
                        finish = "stop"
                        break
        except (aiohttp.ClientError, TimeoutError) as e:
            raise self._transport_failure(request, e) from e
        tail = code.tail(truncated=finish == "length") if code is not None else ""
        if tail:
            pieces.append(tail)
            yield tail
        if not usage_data:
            usage_data = {
                "prompt_tokens": estimate_prompt_tokens(request.messages),
                "completion_tokens": received,
            }
        completion = Completion(text="".join(pieces), finish_reason=finish)
        usage = _usage(usage_data, options)
        yield CompletionResponse(completions=(completion,), usage=usage)

    def cache_scope(self, model: str) -> str:
        """What besides the request shapes ``model``'s answers: this backend and endpoint."""
        options = self._options.get(model, ModelOptions())
        return f"{BACKEND} {normalise_api_base(options.api_base or '')}"

    def price(self, model: str) -> Price | None:
        """The user price of ``model`` (self-hosted servers have no price table)."""
        options = self._options.get(model)
        return options.price if options is not None else None

    async def aclose(self) -> None:
        """Close the pooled connections."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _completion(data: Any, request: CompletionRequest, options: ModelOptions) -> CompletionResponse:
    """The response of a parsed chat-completion body (its first choice); raises _Malformed
    for anything else."""
    response = _completions(data, request, options)
    return response.model_copy(update={"completions": response.completions[:1]})


def _completions(
    data: Any, request: CompletionRequest, options: ModelOptions
) -> CompletionResponse:
    """Every choice of a parsed chat-completion body, in index order; usage counted once."""
    if not isinstance(data, dict):
        raise _Malformed(f"a JSON {type(data).__name__} instead of an object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _Malformed("no 'choices'" if "choices" not in data else "'choices' is empty or bad")
    ordered = sorted(
        (c for c in choices if isinstance(c, dict)), key=lambda c: _count(c.get("index"))
    )
    raw = data.get("usage") or {}
    usage = _usage(raw if isinstance(raw, dict) else {}, options)
    return CompletionResponse(completions=tuple(_choice(c, request) for c in ordered), usage=usage)


def _choice(choice: Mapping[str, Any], request: CompletionRequest) -> Completion:
    message = choice.get("message") or {}
    content = message.get("content") if isinstance(message, dict) else None
    if content is not None and not isinstance(content, str):
        raise _Malformed("the message content is not text")
    finish = choice.get("finish_reason")
    finish = finish if isinstance(finish, str) else None
    return Completion(
        text=reply_text(request, content or "", finish),
        logprob=_safe_logprob(choice) if request.logprobs else None,
        finish_reason=finish,
    )


def _usage(raw: Mapping[str, Any], options: ModelOptions) -> Usage:
    usage = Usage(
        calls=1,
        prompt_tokens=_count(raw.get("prompt_tokens")),
        completion_tokens=_count(raw.get("completion_tokens")),
    )
    if options.price is not None:
        usage = usage.model_copy(update={"usd": options.price.cost(usage)})
    return usage


def _count(value: object) -> int:
    """A token count from a reply (0 when missing or not a non-negative integer)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return 0
    return int(value)


def _safe_logprob(choice: Mapping[str, Any]) -> float | None:
    try:
        return mean_logprob(choice)
    except (AttributeError, TypeError, ValueError, KeyError):
        raise _Malformed("unreadable logprobs") from None


def _snippet(text: str) -> str:
    """The start of what a server sent, on one line, for an error message."""
    flat = " ".join(text.split())
    if not flat:
        return "an empty body"
    return repr(flat[:_SNIPPET] + ("..." if len(flat) > _SNIPPET else ""))


def _transport_error(error: BaseException) -> str:
    if isinstance(error, aiohttp.ServerTimeoutError | TimeoutError):
        return f"no reply in time ({type(error).__name__}: {error or 'timed out'})"
    if isinstance(error, aiohttp.ClientConnectorError):
        return f"cannot connect ({error})"
    return f"{type(error).__name__}: {error}"
