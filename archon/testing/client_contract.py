"""``ClientContract``: the conformance suite every model client's tests subclass.

A client is tested against a **fake transport**: a :class:`FakeTransport` holds the scripted
outcomes (a :class:`Reply` or a :class:`Failure` per call) and records what the client sent.
The test module wires the client to it -- a stand-in for litellm's ``acompletion``, a loopback
OpenAI-compatible server, a fake ``Llama`` -- in :meth:`ClientContract.serve`, and says what
the provider's arguments look like; pytest then collects the inherited ``test_*`` methods::

    class TestMyClient(ClientContract):
        model = "my/model"
        provider_model = "model"          # what the provider is asked for (None: not sent)

        @asynccontextmanager
        async def serve(self, transport, options, keys):
            client = MyClient({self.model: options}, keys=keys, send=stand_in(transport))
            try:
                yield client
            finally:
                await client.aclose()

The stand-in translates the provider's reply or error from the transport's neutral one: it is
the test's statement of the provider's wire format, so the contract checks the client's
translation in both directions.

What the base checks:

* the client is a :class:`~archon.runtime.clients.base.ModelClient` and answers one sample;
* request translation: messages, ``temperature``, ``top_p``, ``max_tokens``, ``seed``,
  ``stop`` and ``logprobs`` reach the provider under its names, unset settings are left out,
  a ``stop_after_code`` request adds the fence stop sequence and its reply keeps its code
  block whole (the closing fence put back, the text after the block cut),
  the model string becomes the provider's model argument, no ``n`` on a single sample, the
  provider's fixed arguments are there;
* response translation: text, usage, finish reason, and the mean token log-probability only
  when asked for;
* failure classification: rate limits, 5xx, timeouts and dropped connections are retryable
  ``ModelCallError``\\ s, bad requests, authentication and unknown models are not, never a
  provider exception; and :class:`~archon.runtime.limits.Limits` retries exactly the
  retryable ones;
* concurrent calls from one event loop get their own answers; ``aclose`` may be called twice;
* optional capabilities, where the client has them: ``stream`` yields text pieces then one
  response; ``complete_samples`` asks for ``n`` samples in one request; ``price`` is the
  user's price and the usage carries its cost;
* keys (``uses_keys = True``), by :class:`~archon.runtime.clients.keys.KeyPolicy`: the environment's
  provider key never goes to a foreign ``api_base``, an unconfirmed ``api_key_env`` is not
  sent and a confirmed one is, a key hidden in extra options is never forwarded, and no key
  reaches an error message or a log record.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from archon.runtime.clients.base import (
    ModelCallError,
    ModelClient,
    ModelOptions,
    MultiSampleClient,
    Price,
    PricedClient,
    StreamingClient,
)
from archon.runtime.clients.code_stop import FENCE_STOP
from archon.runtime.clients.keys import KeyPolicy
from archon.runtime.limits import Limits
from archon.values import Completion, CompletionRequest, CompletionResponse, Message, Usage

__all__ = [
    "ALL_FAILURES",
    "API_BASE",
    "AUTH",
    "BAD_REQUEST",
    "CONNECTION",
    "NOT_FOUND",
    "RATE_LIMIT",
    "SERVER_ERROR",
    "TIMEOUT",
    "UNAVAILABLE",
    "ClientContract",
    "Failure",
    "FakeTransport",
    "Reply",
    "Sent",
]

API_BASE = "http://127.0.0.1:9/v1"
"""The custom endpoint of the key checks (a loopback harness may put its own port in)."""
ENV_KEY = "sk-contract-openai-0123456789abcdef"
SERVER_KEY = "contract-server-key-0123456789"
PYTHON_KEY = "contract-python-key-0123456789"
HIDDEN_KEY = "contract-hidden-key-0123456789"


@dataclass(frozen=True)
class Reply:
    """A successful provider reply, in neutral terms.

    ``token_logprobs`` are the per-token log-probabilities the provider reports when asked
    (the client should answer their mean). ``text`` None: echo the last user message.
    """

    text: str | None = None
    prompt_tokens: int = 11
    completion_tokens: int = 5
    finish_reason: str = "stop"
    token_logprobs: tuple[float, ...] = (-0.25, -0.75, -2.0)


@dataclass(frozen=True)
class Failure:
    """A provider failure: what kind, its HTTP status (if it has one) and whether a later
    attempt may succeed. ``message`` is what the provider says (it may echo a key)."""

    kind: str
    status: int | None
    retryable: bool
    message: str = "scripted failure"


RATE_LIMIT = Failure("rate_limit", 429, True)
SERVER_ERROR = Failure("server_error", 500, True)
UNAVAILABLE = Failure("unavailable", 503, True)
TIMEOUT = Failure("timeout", None, True)
CONNECTION = Failure("connection", None, True)
BAD_REQUEST = Failure("bad_request", 400, False)
AUTH = Failure("auth", 401, False)
NOT_FOUND = Failure("not_found", 404, False)
ALL_FAILURES = (
    RATE_LIMIT,
    SERVER_ERROR,
    UNAVAILABLE,
    TIMEOUT,
    CONNECTION,
    BAD_REQUEST,
    AUTH,
    NOT_FOUND,
)

Outcome = Reply | Failure


@dataclass
class Sent:
    """One call as the provider received it: its arguments (a JSON body, keyword arguments)
    and the credential that came with it, whatever the channel (None: none)."""

    arguments: dict[str, Any]
    credential: str | None = None


@dataclass
class FakeTransport:
    """Scripted outcomes, one per call in order (then :class:`Reply` echoes), and a record of
    every call. Stand-ins call :meth:`answer` once per provider call."""

    outcomes: list[Outcome] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)

    def answer(self, arguments: Mapping[str, Any], credential: str | None = None) -> Outcome:
        """Record a call; its outcome, with an echo filled in as the reply text."""
        self.sent.append(Sent(dict(arguments), credential))
        outcome = self.outcomes.pop(0) if self.outcomes else Reply()
        if isinstance(outcome, Reply) and outcome.text is None:
            return dataclasses.replace(outcome, text=echo(arguments.get("messages") or ()))
        return outcome


def echo(messages: Iterable[Any]) -> str:
    """The reply text of an echo: ``echo: `` and the last user message."""
    users = [
        m.get("content") if isinstance(m, Mapping) else getattr(m, "content", "")
        for m in messages
        if (m.get("role") if isinstance(m, Mapping) else getattr(m, "role", "")) == "user"
    ]
    return f"echo: {users[-1] if users else ''}"


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


class ClientContract:
    """Base class of a model client's tests. Subclasses set ``model`` and implement
    :meth:`serve`; the class attributes below describe the provider's side."""

    model: ClassVar[str]
    options: ClassVar[ModelOptions] = ModelOptions()
    """The options of ``model`` in the ordinary checks (key checks add their own)."""
    provider_model: ClassVar[str | None] = None
    """What the provider receives as ``model`` (None: no model argument is sent)."""
    fixed_arguments: ClassVar[Mapping[str, object]] = {}
    """Arguments every call carries (e.g. litellm's ``num_retries=0``)."""
    logprobs_arguments: ClassVar[Mapping[str, object]] = {"logprobs": True}
    """What asking for log-probabilities adds to the arguments."""
    translates: ClassVar[bool] = True
    """False for a client with no provider arguments (the scripted fake)."""
    failures: ClassVar[tuple[Failure, ...]] = ALL_FAILURES
    """The failures the transport can produce for this client."""
    reports_status: ClassVar[bool] = True
    """Whether HTTP-like failures carry their status on the ModelCallError."""
    uses_keys: ClassVar[bool] = False
    """Whether the client sends keys (then the key checks run)."""
    charges_price: ClassVar[bool] = True
    """Whether a user price also gives the usage its cost (not only the budget's estimate)."""

    # ----------------------------------------------------------------- to implement

    def serve(
        self, transport: FakeTransport, options: ModelOptions, keys: KeyPolicy
    ) -> AbstractAsyncContextManager[ModelClient]:
        """The client under test, wired to ``transport``, with ``options`` for ``model`` and
        the key policy ``keys``; closed (and its harness stopped) on exit."""
        raise NotImplementedError

    def expected_response(self, request: CompletionRequest, reply: Reply) -> CompletionResponse:
        """What the client should answer to ``request`` when the provider sent ``reply``."""
        assert reply.text is not None
        completion = Completion(
            text=reply.text,
            logprob=_mean(reply.token_logprobs) if request.logprobs else None,
            finish_reason=reply.finish_reason,
        )
        usage = Usage(
            calls=1, prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens
        )
        return CompletionResponse(completions=(completion,), usage=usage)

    # ----------------------------------------------------------------- helpers

    def request(self, **fields: Any) -> CompletionRequest:
        """A request for ``model`` (a system and a user message unless given)."""
        values: dict[str, Any] = {
            "model": self.model,
            "messages": (
                Message(role="system", content="Be brief."),
                Message(role="user", content="What is 6 times 7?"),
            ),
        }
        values.update(fields)
        return CompletionRequest(**values)

    async def calls(
        self,
        requests: Sequence[CompletionRequest],
        outcomes: Iterable[Outcome] = (),
        *,
        options: ModelOptions | None = None,
        keys: KeyPolicy | None = None,
    ) -> tuple[list[CompletionResponse | ModelCallError], FakeTransport]:
        """Send ``requests`` one after the other; each answer or ModelCallError in order."""
        transport = FakeTransport(list(outcomes))
        results: list[CompletionResponse | ModelCallError] = []
        async with self.serve(transport, options or self.options, keys or KeyPolicy()) as client:
            for request in requests:
                try:
                    results.append(await client.complete(request))
                except ModelCallError as error:
                    results.append(error)
        return results, transport

    def call(
        self, request: CompletionRequest | None = None, *outcomes: Outcome, **kw: Any
    ) -> tuple[CompletionResponse | ModelCallError, FakeTransport]:
        """One call (synchronously): its answer or error, and the transport."""
        results, transport = asyncio.run(self.calls([request or self.request()], outcomes, **kw))
        return results[0], transport

    def answer(
        self, request: CompletionRequest | None = None, *outcomes: Outcome, **kw: Any
    ) -> tuple[CompletionResponse, Sent]:
        """One successful call: the answer and what the provider received."""
        result, transport = self.call(request, *outcomes, **kw)
        assert isinstance(result, CompletionResponse), f"the call failed: {result}"
        assert len(transport.sent) == 1, f"{len(transport.sent)} provider calls for one sample"
        return result, transport.sent[0]

    def need(self, condition: bool, why: str) -> None:
        """Skip the check unless ``condition`` holds (a capability the client lacks)."""
        if not condition:
            pytest.skip(why)

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Failure checks run once per failure the subclass's transport can produce."""
        if "failure" in metafunc.fixturenames:
            failures = getattr(metafunc.cls, "failures", ALL_FAILURES)
            metafunc.parametrize("failure", failures, ids=[f.kind for f in failures])

    # ----------------------------------------------------------------- the client

    def test_is_a_model_client(self) -> None:
        async def check() -> None:
            async with self.serve(FakeTransport(), self.options, KeyPolicy()) as client:
                assert isinstance(client, ModelClient)
                assert inspect.iscoroutinefunction(client.complete)
                assert inspect.iscoroutinefunction(client.aclose)

        asyncio.run(check())

    # ----------------------------------------------------------------- the request

    def test_translates_the_request(self) -> None:
        self.need(self.translates, "the client has no provider arguments")
        request = self.request(
            temperature=0.3, top_p=0.9, max_tokens=17, seed=5, stop=("END", "##")
        )
        _, sent = self.answer(request)
        arguments = sent.arguments
        assert arguments["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 6 times 7?"},
        ]
        assert arguments["temperature"] == 0.3
        assert arguments["top_p"] == 0.9
        assert arguments["max_tokens"] == 17
        assert arguments["seed"] == 5
        assert list(arguments["stop"]) == ["END", "##"]
        assert arguments.get("n", 1) == 1, "a single sample must not ask for n choices"
        assert not any(arguments.get(name) for name in self.logprobs_arguments)
        for name, value in self.fixed_arguments.items():
            assert arguments.get(name) == value, f"{name}: {arguments.get(name)!r} != {value!r}"

    def test_maps_the_model_string(self) -> None:
        self.need(self.translates, "the client has no provider arguments")
        _, sent = self.answer()
        if self.provider_model is None:
            assert "model" not in sent.arguments
        else:
            assert sent.arguments["model"] == self.provider_model

    def test_leaves_unset_settings_to_the_provider(self) -> None:
        self.need(self.translates, "the client has no provider arguments")
        _, sent = self.answer()
        for name in ("temperature", "top_p", "max_tokens", "seed", "stop", "n", "logprobs"):
            assert name not in sent.arguments, f"{name} was sent although the request left it unset"

    def test_asks_for_logprobs_only_when_requested(self) -> None:
        response, sent = self.answer(self.request(logprobs=True))
        if self.translates:
            for name, value in self.logprobs_arguments.items():
                assert sent.arguments.get(name) == value
        expected = self.expected_response(self.request(logprobs=True), _reply(sent, Reply()))
        assert response.completions[0].logprob == pytest.approx(expected.completions[0].logprob)
        plain, _ = self.answer()
        assert plain.completions[0].logprob is None

    def test_stop_after_code_stops_on_the_fence_and_keeps_the_block(self) -> None:
        self.need(self.translates, "the client has no provider arguments")
        request = self.request(stop=("END",), stop_after_code=True)
        stopped = Reply(text="Sure:\n```python\nx = 1")  # the stop sequence took the fence
        response, sent = self.answer(request, stopped)
        assert list(sent.arguments["stop"]) == ["END", FENCE_STOP]
        assert response.completions[0].text == "Sure:\n```python\nx = 1\n```"
        missed = Reply(text="```python\nx = 1\n```\nThis sets x.")  # no blank line after
        response, _ = self.answer(request, missed)
        assert response.completions[0].text == "```python\nx = 1\n```"
        cut_short = Reply(text="```python\nx = 1", finish_reason="length")
        response, _ = self.answer(request, cut_short)
        assert response.completions[0].text == "```python\nx = 1"

    # ----------------------------------------------------------------- the response

    def test_translates_the_response(self) -> None:
        reply = Reply(
            text="forty-two", prompt_tokens=23, completion_tokens=4, finish_reason="length"
        )
        request = self.request(max_tokens=4)
        response, _ = self.answer(request, reply)
        expected = self.expected_response(request, reply)
        assert len(response.completions) == 1
        assert response.completions[0] == expected.completions[0]
        assert response.usage.calls == 1
        assert response.usage.prompt_tokens == expected.usage.prompt_tokens
        assert response.usage.completion_tokens == expected.usage.completion_tokens
        assert not response.cached

    def test_concurrent_calls_get_their_own_answers(self) -> None:
        questions = [f"question {i}" for i in range(5)]

        async def check() -> list[CompletionResponse]:
            async with self.serve(FakeTransport(), self.options, KeyPolicy()) as client:
                requests = [
                    self.request(messages=(Message(role="user", content=q),)) for q in questions
                ]
                return list(await asyncio.gather(*(client.complete(r) for r in requests)))

        responses = asyncio.run(check())
        assert [r.completions[0].text for r in responses] == [f"echo: {q}" for q in questions]

    def test_aclose_twice(self) -> None:
        async def check() -> None:
            async with self.serve(FakeTransport(), self.options, KeyPolicy()) as client:
                await client.complete(self.request())
                await client.aclose()
                await client.aclose()

        asyncio.run(check())

    # ----------------------------------------------------------------- failures

    def test_classifies_failures(self, failure: Failure) -> None:
        error, _ = self.call(None, failure)
        assert isinstance(error, ModelCallError), f"{failure.kind} did not raise: {error}"
        assert error.retryable is failure.retryable, f"{failure.kind}: retryable={error.retryable}"
        if self.reports_status and failure.status is not None:
            assert error.status == failure.status
        assert self.model in str(error), "the error should name the model"

    def test_limits_retry_only_retryable_failures(self, failure: Failure) -> None:
        limits = Limits(retries=1, backoff_s=0.0, jitter=0.0, timeout_s=30.0)

        async def check() -> tuple[CompletionResponse | ModelCallError, FakeTransport]:
            transport = FakeTransport([failure, Reply(text="second try")])
            request = self.request()
            async with self.serve(transport, self.options, KeyPolicy()) as client:
                try:
                    return await limits.call(
                        self.model, lambda: client.complete(request)
                    ), transport
                except ModelCallError as error:
                    return error, transport

        result, transport = asyncio.run(check())
        if failure.retryable:
            assert isinstance(result, CompletionResponse), f"{failure.kind}: {result}"
            assert result.completions[0].text == "second try"
            assert len(transport.sent) == 2
        else:
            assert isinstance(result, ModelCallError) and not result.retryable
            assert len(transport.sent) == 1, f"{failure.kind} was retried"

    # ----------------------------------------------------------------- capabilities

    def test_streams_pieces_then_one_response(self) -> None:
        async def check() -> list[str | CompletionResponse] | None:
            transport = FakeTransport([Reply(text="a streamed answer of some length")])
            async with self.serve(transport, self.options, KeyPolicy()) as client:
                if not isinstance(client, StreamingClient):
                    return None
                stream: AsyncIterator[str | CompletionResponse] = client.stream(self.request())
                return [item async for item in stream]

        items = asyncio.run(check())
        self.need(items is not None, "the client does not stream")
        assert items
        *pieces, final = items
        assert isinstance(final, CompletionResponse) and len(final.completions) == 1
        assert all(isinstance(p, str) for p in pieces)
        assert final.completions[0].text == "a streamed answer of some length"
        if pieces:
            assert "".join(str(p) for p in pieces) == final.completions[0].text
        assert final.usage.calls == 1

    def test_complete_samples_asks_for_n_in_one_request(self) -> None:
        async def check() -> tuple[CompletionResponse, FakeTransport] | None:
            transport = FakeTransport()
            async with self.serve(transport, self.options, KeyPolicy()) as client:
                if not isinstance(client, MultiSampleClient) or not client.batches_samples(
                    self.model
                ):
                    return None
                response = await client.complete_samples(self.request(seed=99), (7, 8, 9))
                return response, transport

        result = asyncio.run(check())
        self.need(result is not None, "the client does not batch samples")
        assert result is not None
        response, transport = result
        assert len(response.completions) == 3
        assert len(transport.sent) == 1
        assert transport.sent[0].arguments["n"] == 3
        assert transport.sent[0].arguments["seed"] == 7

    def test_prices_with_the_users_price(self) -> None:
        price = Price.per_million(1.0, 3.0)
        options = dataclasses.replace(self.options, price=price)

        async def check() -> tuple[Price | None, CompletionResponse] | None:
            async with self.serve(FakeTransport(), options, KeyPolicy()) as client:
                if not isinstance(client, PricedClient):
                    return None
                return client.price(self.model), await client.complete(self.request())

        result = asyncio.run(check())
        self.need(result is not None, "the client has no prices")
        assert result is not None
        known, response = result
        if known is None:
            pytest.skip("the client ignores user prices")
        assert known == price
        if self.charges_price:
            assert response.usage.usd == pytest.approx(price.cost(response.usage))

    # ----------------------------------------------------------------- keys

    def key_options(self, **fields: Any) -> ModelOptions:
        """``options`` with a custom ``api_base`` and ``fields`` (for the key checks)."""
        return dataclasses.replace(self.options, api_base=API_BASE, **fields)

    def test_env_key_never_goes_to_a_foreign_api_base(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.need(self.uses_keys, "the client sends no keys")
        monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
        _, sent = self.answer(options=self.key_options())
        assert sent.credential != ENV_KEY
        assert ENV_KEY not in repr(sent.arguments)

    def test_unconfirmed_key_variable_is_not_sent(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.need(self.uses_keys, "the client sends no keys")
        monkeypatch.setenv("MY_SERVER_API_KEY", SERVER_KEY)
        _, sent = self.answer(options=self.key_options(api_key_env="MY_SERVER_API_KEY"))
        assert sent.credential != SERVER_KEY
        assert SERVER_KEY not in repr(sent.arguments)

    def test_confirmed_key_variable_is_sent(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.need(self.uses_keys, "the client sends no keys")
        monkeypatch.setenv("MY_SERVER_API_KEY", SERVER_KEY)
        keys = KeyPolicy.from_strings(["MY_SERVER_API_KEY@127.0.0.1"])
        _, sent = self.answer(options=self.key_options(api_key_env="MY_SERVER_API_KEY"), keys=keys)
        assert sent.credential == SERVER_KEY

    def test_keys_in_extra_options_are_never_forwarded(self) -> None:
        self.need(self.uses_keys, "the client sends no keys")
        extra = (
            ("api_key", HIDDEN_KEY),
            ("base_url", "http://elsewhere.example/v1"),
            ("extra_headers", {"Authorization": f"Bearer {HIDDEN_KEY}"}),
        )
        _, sent = self.answer(options=self.key_options(extra=extra))
        assert sent.credential != HIDDEN_KEY
        assert HIDDEN_KEY not in repr(sent.arguments)
        assert "base_url" not in sent.arguments

    def test_keys_never_reach_errors_or_logs(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        self.need(self.uses_keys, "the client sends no keys")
        monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
        caplog.set_level(logging.DEBUG)
        echoed = dataclasses.replace(AUTH, message=f"key {PYTHON_KEY} (env {ENV_KEY}) refused")
        options = self.key_options(api_key=PYTHON_KEY)
        error, transport = self.call(None, echoed, options=options)
        assert transport.sent[0].credential == PYTHON_KEY, "a key given in Python is used"
        assert isinstance(error, ModelCallError) and not error.retryable
        for secret in (PYTHON_KEY, ENV_KEY):
            assert secret not in str(error)
            assert all(secret not in record.getMessage() for record in caplog.records)


def _reply(sent: Sent, reply: Reply) -> Reply:
    """``reply`` with the echo its call got."""
    return dataclasses.replace(reply, text=echo(sent.arguments.get("messages") or ()))
