"""``OpenAICompatClient``: a lean, pooled HTTP client for OpenAI-compatible servers.

litellm costs about 4 ms of CPU per call, which caps a single event loop at a few hundred
calls per second -- below what a local vLLM/SGLang/llama.cpp server with continuous batching
can take (see bench/README.md). For ``openai/<name>`` models that have an ``api_base`` the
router uses this client instead: one pooled ``aiohttp`` session for the life of the client,
a plain JSON POST to ``/chat/completions``, and the same error classification as the litellm
client (429/5xx/timeouts/connection errors are retryable).

Keys follow :class:`~archon.runtime.keys.KeyPolicy`: a ``.pipe`` file's ``api_base`` gets a
key only when the user confirmed it. A reply that is not a chat completion (invalid JSON, no
``choices``) becomes a :class:`ModelCallError` quoting what the server sent, truncated and
redacted. Connecting and the first byte of the reply have their own, shorter timeouts
(:class:`HttpTimeouts`), so an unreachable or silent server fails fast.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from archon.runtime.clients.base import ModelCallError, ModelOptions, Price
from archon.runtime.keys import KeyDecision, KeyPolicy, normalise_api_base
from archon.runtime.secrets import Redactor
from archon.values import Completion, CompletionRequest, CompletionResponse, Usage

_RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
_AUTH_STATUS = frozenset({401, 403})
PREFIX = "openai/"
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


def _mean_logprob(choice: Mapping[str, Any]) -> float | None:
    content = (choice.get("logprobs") or {}).get("content") or ()
    values = [float(t["logprob"]) for t in content if t.get("logprob") is not None]
    return sum(values) / len(values) if values else None


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
        self._keys = keys or KeyPolicy()
        self._timeouts = timeouts or HttpTimeouts()
        self._decisions: dict[str, KeyDecision] = {}
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
            keys += [d.key for d in self._decisions.values() if d.key]
            self._redactor = Redactor.from_environ(extra=keys)
        return self._redactor.redact(text)

    def key_decision(self, model: str) -> KeyDecision:
        """Which key requests for ``model`` carry (decided once, on first use)."""
        if model not in self._decisions:
            options = self._options.get(model, ModelOptions())
            self._decisions[model] = self._keys.decide(model, options)
            self._redactor = None  # a new key to redact
        return self._decisions[model]

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

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """POST one chat completion; errors become classified ModelCallErrors."""
        options = self._options.get(request.model, ModelOptions())
        if not options.api_base:
            raise ModelCallError(f"{request.model}: no api_base configured", model=request.model)
        decision = self.key_decision(request.model)
        headers = {"Authorization": f"Bearer {decision.key}"} if decision.key else {}
        url = options.api_base.rstrip("/") + "/chat/completions"
        try:
            async with self._client().post(
                url,
                json=self.body(request),
                headers=headers,
                timeout=self._timeouts.client_timeout(),
                # A redirect could carry the Authorization header to a host nobody confirmed.
                allow_redirects=False,
            ) as reply:
                status = reply.status
                retry_after = reply.headers.get("retry-after")
                location = reply.headers.get("location", "")
                raw_body = await reply.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            raise ModelCallError(
                self._redact(f"{request.model}: {_transport_error(e)}"),
                model=request.model,
                retryable=True,
            ) from e
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
            raise ModelCallError(
                self._redact(
                    f"{request.model}: HTTP {status}: {_snippet(text)}"
                    + (decision.auth_hint() if status in _AUTH_STATUS else "")
                ),
                model=request.model,
                retryable=status in _RETRYABLE_STATUS,
                status=status,
                retry_after_s=float(retry_after) if retry_after and retry_after.isdigit() else None,
            )
        try:
            return _completion(json.loads(text), request, options)
        except (ValueError, _Malformed) as e:
            reason = "invalid JSON" if isinstance(e, json.JSONDecodeError) else str(e)
            raise ModelCallError(
                self._redact(
                    f"{request.model}: the server at {options.api_base} did not send a chat"
                    f" completion ({reason}); it sent: {_snippet(text)}"
                ),
                model=request.model,
                status=status,
            ) from None

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
    """The response of a parsed chat-completion body; raises _Malformed for anything else."""
    if not isinstance(data, dict):
        raise _Malformed(f"a JSON {type(data).__name__} instead of an object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _Malformed("no 'choices'" if "choices" not in data else "'choices' is empty or bad")
    choice = choices[0]
    message = choice.get("message") or {}
    content = message.get("content") if isinstance(message, dict) else None
    if content is not None and not isinstance(content, str):
        raise _Malformed("the message content is not text")
    raw = data.get("usage") or {}
    raw = raw if isinstance(raw, dict) else {}
    usage = Usage(
        calls=1,
        prompt_tokens=_count(raw.get("prompt_tokens")),
        completion_tokens=_count(raw.get("completion_tokens")),
    )
    if options.price is not None:
        usage = usage.model_copy(update={"usd": options.price.cost(usage)})
    finish = choice.get("finish_reason")
    completion = Completion(
        text=content or "",
        logprob=_safe_logprob(choice) if request.logprobs else None,
        finish_reason=finish if isinstance(finish, str) else None,
    )
    return CompletionResponse(completions=(completion,), usage=usage)


def _count(value: object) -> int:
    """A token count from a reply (0 when missing or not a non-negative integer)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return 0
    return int(value)


def _safe_logprob(choice: Mapping[str, Any]) -> float | None:
    try:
        return _mean_logprob(choice)
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
