"""``ScriptedClient``: a deterministic, offline model client for tests.

Responses come from rules, tried in order; the first that matches answers. A rule is a pair
``(match, reply)``: ``match`` is a regular expression searched in the prompt text (all
messages joined by newlines), a predicate on the request, or ``None`` (always); ``reply`` is a
string (``{query}``, ``{model}`` and ``{seed}`` are substituted) or a function
of the request. Without a matching rule the client echoes the last user message.

It can simulate latency, fail its first ``fail_first`` calls with a retryable error (or any
error you give), and it records every request it got and how many ran at once::

    client = ScriptedClient([(r"capital of France", "Paris")], latency_s=0.01, fail_first=1)
    ...
    assert client.calls == 2 and client.max_in_flight == 1

A ``stop_after_code`` reply ends with the closing fence of its first code block, as the
embedded engine ends it; the completion tokens reported count what is left.

Step-level search: a request with an ``assistant_prefix`` is answered like any other (the
prefix is part of the text regex rules search, and a reply function can read
``request.assistant_prefix``); the reply is the continuation only, cut before the first of
``request.stop`` (the stop string is not included, as OpenAI-compatible servers do). A
``score_only`` request generates nothing: its ``logprob`` is ``logprob`` (a number, or a
function of the request and the text), or the call fails as on a backend without prompt
log-probabilities when ``score_only=False``::

    client = ScriptedClient(
        lambda r: "Step 2." if r.assistant_prefix else "Step 1.\n\nStep 2.",
        logprob=lambda request, text: -0.1 if "Yes" == request.assistant_prefix else None,
    )
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass

from archon.runtime.clients.base import ModelCallError, Price
from archon.runtime.clients.code_stop import cut_after_code
from archon.values import Completion, CompletionRequest, CompletionResponse, Usage

Match = str | re.Pattern[str] | Callable[[CompletionRequest], bool] | None
Reply = str | Callable[[CompletionRequest], str]
Rule = tuple[Match, Reply]
Logprob = float | Callable[[CompletionRequest, str], float | None]


def prompt_text(request: CompletionRequest) -> str:
    """All message contents of ``request`` and its assistant prefix, joined by newlines
    (what regex rules search)."""
    parts = [m.content for m in request.messages]
    if request.assistant_prefix is not None:
        parts.append(request.assistant_prefix)
    return "\n".join(parts)


def last_user(request: CompletionRequest) -> str:
    """The content of the last user message ('' if none)."""
    return next((m.content for m in reversed(request.messages) if m.role == "user"), "")


def fake_tokens(text: str) -> int:
    """The token count the fake reports: about four characters per token."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class _Compiled:
    match: Callable[[CompletionRequest], bool]
    reply: Reply


def _compile(rule: Rule) -> _Compiled:
    match, reply = rule
    if match is None:
        return _Compiled(lambda _r: True, reply)
    if isinstance(match, str | re.Pattern):
        pattern = re.compile(match) if isinstance(match, str) else match
        return _Compiled(lambda r: pattern.search(prompt_text(r)) is not None, reply)
    return _Compiled(match, reply)


def _retryable_failure(request: CompletionRequest) -> BaseException:
    return ModelCallError(
        f"{request.model}: scripted failure (HTTP 503)",
        model=request.model,
        retryable=True,
        status=503,
    )


class ScriptedClient:
    """A :class:`~archon.runtime.clients.base.ModelClient` answering by rules, offline.

    Args:
        rules: ``(match, reply)`` pairs tried in order (see the module docstring), or one
            function ``request -> str`` answering everything.
        latency_s: simulated latency per call, a number or a function of the request.
        fail_first: the first ``fail_first`` calls raise ``failure(request)``.
        failure: builds the injected error (default: a retryable HTTP 503).
        fail_when: calls whose request matches this predicate always fail.
        price: a :class:`~archon.runtime.clients.base.Price` to report costs with.
        logprob: the mean token log-probability reported when a request asks for logprobs
            (and for every ``score_only`` request): a number, or a function of the request
            and the reply text (``""`` for ``score_only``) returning a number or None.
        score_only: False makes ``score_only`` requests fail with a non-retryable
            ``ModelCallError``, as on a backend without prompt log-probabilities.
        chunk_chars / chunk_delay_s: how :meth:`stream` splits an answer, and the pause
            between pieces.

    Attributes:
        requests: every request received, in arrival order (failed ones included).
        calls: number of requests received.
        in_flight / max_in_flight: concurrent calls now / at most.
        intervals: ``(start, end)`` monotonic times of each successful call.
        streamed: calls answered through :meth:`stream`.
    """

    def __init__(
        self,
        rules: Iterable[Rule] | Callable[[CompletionRequest], str] = (),
        *,
        latency_s: float | Callable[[CompletionRequest], float] = 0.0,
        fail_first: int = 0,
        failure: Callable[[CompletionRequest], BaseException] = _retryable_failure,
        fail_when: Callable[[CompletionRequest], bool] | None = None,
        price: Price | None = None,
        logprob: Logprob = -0.5,
        score_only: bool = True,
        chunk_chars: int = 4,
        chunk_delay_s: float = 0.0,
    ) -> None:
        if callable(rules):
            rules = [(None, rules)]
        self._rules: Sequence[_Compiled] = [_compile(rule) for rule in rules]
        self._latency = latency_s
        self._fail_first = fail_first
        self._failure = failure
        self._fail_when = fail_when
        self._price = price
        self._logprob = logprob
        self._score_only = score_only
        self._chunk_chars = max(1, chunk_chars)
        self._chunk_delay_s = chunk_delay_s
        self.streamed = 0
        self.requests: list[CompletionRequest] = []
        self.intervals: list[tuple[float, float]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.closed = False

    @property
    def calls(self) -> int:
        return len(self.requests)

    def price(self, model: str) -> Price | None:
        """The configured price (for every model), or None."""
        return self._price

    def reply_for(self, request: CompletionRequest) -> str:
        """The text the rules give for ``request`` (echo of the last user message if none)."""
        for rule in self._rules:
            if rule.match(request):
                if callable(rule.reply):
                    return rule.reply(request)
                return (
                    rule.reply.replace("{query}", last_user(request))
                    .replace("{model}", request.model)
                    .replace("{seed}", str(request.seed))
                )
        return last_user(request)

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """Answer one sample by the rules, after the simulated latency."""
        self.requests.append(request)
        number = len(self.requests)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        start = time.monotonic()
        try:
            latency = self._latency(request) if callable(self._latency) else self._latency
            if latency > 0:
                await asyncio.sleep(latency)
            if number <= self._fail_first or (self._fail_when and self._fail_when(request)):
                raise self._failure(request)
            if request.score_only and not self._score_only:
                raise ModelCallError(
                    f"{request.model}: scripted backend without prompt log-probabilities"
                    " (score_only)",
                    model=request.model,
                )
            text = "" if request.score_only else self.reply_for(request)
        finally:
            self.in_flight -= 1
        self.intervals.append((start, time.monotonic()))
        return self._response(request, text)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str | CompletionResponse]:
        """Like :meth:`complete`, then the answer in pieces of about ``chunk_chars``
        characters (``chunk_delay_s`` apart), then the response (see ``StreamingClient``)."""
        response = await self.complete(request)
        self.streamed += 1
        text = response.completions[0].text
        for start in range(0, len(text), self._chunk_chars):
            if start and self._chunk_delay_s > 0:
                await asyncio.sleep(self._chunk_delay_s)
            yield text[start : start + self._chunk_chars]
        yield response

    def _response(self, request: CompletionRequest, text: str) -> CompletionResponse:
        text, finish = _cut(text, request)
        prompt = sum(fake_tokens(m.content) + 4 for m in request.messages)
        prompt += fake_tokens(request.assistant_prefix or "")
        usage = Usage(calls=1, prompt_tokens=prompt, completion_tokens=fake_tokens(text))
        if self._price is not None:
            usage = usage.model_copy(update={"usd": self._price.cost(usage)})
        logprob = (
            self._logprob_for(request, text) if request.logprobs or request.score_only else None
        )
        completion = Completion(text=text, logprob=logprob, finish_reason=finish)
        return CompletionResponse(completions=(completion,), usage=usage)

    def _logprob_for(self, request: CompletionRequest, text: str) -> float | None:
        if callable(self._logprob):
            return self._logprob(request, text)
        return self._logprob

    async def aclose(self) -> None:
        """Mark the client closed (nothing to release)."""
        self.closed = True


def _cut(text: str, request: CompletionRequest) -> tuple[str, str]:
    """The reply as a server returns it: cut before the first stop string, after the first
    complete code block (``stop_after_code``, as the embedded engine ends it), then at
    ``max_tokens``; with the finish reason (``stop`` or ``length``)."""
    ends = [text.find(stop) for stop in request.stop if stop and stop in text]
    if ends:
        text = text[: min(ends)]
    if request.stop_after_code:
        text = cut_after_code(text, request.assistant_prefix or "") or text
    if request.max_tokens is not None and fake_tokens(text) > request.max_tokens:
        return text[: request.max_tokens * 4], "length"
    return text, "stop"
