"""Every model client against :class:`archon.testing.ClientContract`, on fake transports.

Nothing leaves the process or loopback and no model is loaded: litellm is a stand-in module
(``acompletion``, its exception classes), the OpenAI-compatible client talks to
:class:`~archon.testing.openai_server.FakeOpenAIServer` on 127.0.0.1, the local client's
sequential path gets a fake ``Llama`` class, and the router is run in front of each of them.
Each stand-in speaks its provider's wire format; the transport's neutral outcome says what.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, ClassVar

import pytest
from aiohttp import web

from archon.errors import ArchonError
from archon.ir import ModelSpec, Param, Pipeline
from archon.runtime.clients.base import ModelCallError, ModelClient, ModelOptions
from archon.runtime.clients.fake import ScriptedClient, fake_tokens
from archon.runtime.clients.keys import KeyPolicy
from archon.runtime.clients.litellm import LiteLLMClient, import_litellm
from archon.runtime.clients.local.client import LocalClient
from archon.runtime.clients.local.engine_check import EngineGuard
from archon.runtime.clients.openai_compat import HttpTimeouts, OpenAICompatClient
from archon.runtime.clients.router import RouterClient
from archon.testing import ClientContract
from archon.testing.client_contract import (
    BAD_REQUEST,
    UNAVAILABLE,
    Failure,
    FakeTransport,
    Reply,
    Sent,
)
from archon.testing.openai_server import FakeOpenAIServer
from archon.values import CompletionRequest, CompletionResponse, Usage

from .conftest import node, pipeline

# --- litellm: a stand-in module ---------------------------------------------------------------


class _LiteLLMError(Exception):
    status_code: ClassVar[int | None] = None


def _error_class(name: str, status: int | None) -> type[_LiteLLMError]:
    return type(name, (_LiteLLMError,), {"status_code": status})


_LITELLM_ERRORS = {
    "rate_limit": _error_class("RateLimitError", 429),
    "server_error": _error_class("InternalServerError", 500),
    "unavailable": _error_class("ServiceUnavailableError", 503),
    "timeout": _error_class("Timeout", 408),
    "connection": _error_class("APIConnectionError", None),
    "bad_request": _error_class("BadRequestError", 400),
    "auth": _error_class("AuthenticationError", 401),
    "not_found": _error_class("NotFoundError", 404),
}


def litellm_stand_in(transport: FakeTransport, *, cost: float | None = None) -> ModuleType:
    """A module with litellm's ``acompletion``, exception classes and price functions, that
    answers from ``transport`` with objects shaped like litellm's ``ModelResponse``."""
    module = ModuleType("litellm_stand_in")
    for error in _LITELLM_ERRORS.values():
        setattr(module, error.__name__, error)

    async def acompletion(**kwargs: Any) -> Any:
        outcome = transport.answer(kwargs, kwargs.get("api_key"))
        if isinstance(outcome, Failure):
            raise _LITELLM_ERRORS[outcome.kind](f"litellm.{outcome.kind}: {outcome.message}")
        logprobs = None
        if kwargs.get("logprobs"):
            tokens = [SimpleNamespace(logprob=v) for v in outcome.token_logprobs]
            logprobs = SimpleNamespace(content=tokens)
        choice = SimpleNamespace(
            message=SimpleNamespace(role="assistant", content=outcome.text),
            finish_reason=outcome.finish_reason,
            logprobs=logprobs,
        )
        usage = SimpleNamespace(
            prompt_tokens=outcome.prompt_tokens, completion_tokens=outcome.completion_tokens
        )
        return SimpleNamespace(choices=[choice], usage=usage)

    def completion_cost(completion_response: Any) -> float:
        if cost is None:
            raise ValueError("this model is not in the price table")
        return cost

    async def close_litellm_async_clients() -> None:
        return None

    module.acompletion = acompletion  # type: ignore[attr-defined]
    module.completion_cost = completion_cost  # type: ignore[attr-defined]
    module.close_litellm_async_clients = close_litellm_async_clients  # type: ignore[attr-defined]
    module.model_cost = {}  # type: ignore[attr-defined]
    return module


class TestLiteLLMClient(ClientContract):
    model = "together_ai/some-model"
    provider_model = "together_ai/some-model"
    fixed_arguments: ClassVar[Mapping[str, object]] = {"num_retries": 0, "drop_params": True}
    uses_keys = True

    @asynccontextmanager
    async def serve(
        self, transport: FakeTransport, options: ModelOptions, keys: KeyPolicy
    ) -> AsyncIterator[ModelClient]:
        async with aclosing(
            LiteLLMClient({self.model: options}, keys=keys, litellm=litellm_stand_in(transport))
        ) as client:
            yield client

    def test_a_foreign_api_base_gets_the_placeholder_key(self) -> None:
        _, sent = self.answer(options=ModelOptions(api_base="http://127.0.0.1:9/v1"))
        assert sent.arguments["api_base"] == "http://127.0.0.1:9/v1"
        assert sent.credential == "no-key"

    def test_extra_options_pass_through(self) -> None:
        _, sent = self.answer(options=ModelOptions(extra=(("top_k", 3),)))
        assert sent.arguments["top_k"] == 3

    def test_cost_from_the_price_table(self) -> None:
        async def check() -> CompletionResponse:
            stand_in = litellm_stand_in(FakeTransport(), cost=0.25)
            async with aclosing(LiteLLMClient(litellm=stand_in)) as client:
                return await client.complete(self.request())

        assert asyncio.run(check()).usage.usd == 0.25

    def test_a_reply_without_choices_is_a_model_call_error(self) -> None:
        module = litellm_stand_in(FakeTransport())

        async def empty(**kwargs: Any) -> Any:
            return SimpleNamespace(choices=[], usage=None)

        module.acompletion = empty  # type: ignore[attr-defined]
        client = LiteLLMClient(litellm=module)
        with pytest.raises(ModelCallError, match="no choices"):
            asyncio.run(client.complete(self.request()))


@pytest.mark.integration
def test_the_stand_in_uses_litellms_own_exception_names() -> None:
    """The client classifies litellm's errors by class name: the real module must have them
    (importing litellm takes seconds, hence integration)."""
    pytest.importorskip("litellm")
    litellm = import_litellm()
    for error in _LITELLM_ERRORS.values():
        assert issubclass(getattr(litellm, error.__name__), Exception), error.__name__


# --- OpenAI-compatible: a loopback server ---------------------------------------------------

_ATTEMPT_S = 0.3  # the client's first-byte timeout in these tests; a "timeout" waits longer


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    return header.removeprefix("Bearer ") if header else None


def _openai_choice(index: int, reply: Reply, logprobs: bool) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "index": index,
        "finish_reason": reply.finish_reason,
        "message": {"role": "assistant", "content": reply.text},
    }
    if logprobs:
        choice["logprobs"] = {"content": [{"logprob": v} for v in reply.token_logprobs]}
    return choice


def openai_stand_in(server: FakeOpenAIServer, transport: FakeTransport) -> Any:
    """An ``on_request`` hook answering from ``transport`` in the OpenAI wire format."""

    async def on_request(request: web.Request, body: dict[str, Any]) -> web.StreamResponse | None:
        outcome = transport.answer(body, _bearer(request))
        if isinstance(outcome, Failure):
            if outcome.kind == "timeout":
                await asyncio.sleep(_ATTEMPT_S * 2)
            if outcome.kind == "connection":
                assert request.transport is not None
                request.transport.abort()
            error = {"error": {"message": outcome.message, "type": outcome.kind}}
            return web.json_response(error, status=outcome.status or 500)
        if body.get("stream"):
            assert outcome.text is not None
            server.reply = outcome.text  # the server's own SSE chunking streams it
            return None
        n = int(body.get("n") or 1)
        replies = [outcome] + [
            dataclasses.replace(outcome, text=f"{outcome.text} #{i}") for i in range(1, n)
        ]
        return web.json_response(
            {
                "object": "chat.completion",
                "choices": [
                    _openai_choice(i, r, bool(body.get("logprobs"))) for i, r in enumerate(replies)
                ],
                "usage": {
                    "prompt_tokens": outcome.prompt_tokens,
                    "completion_tokens": outcome.completion_tokens,
                },
            }
        )

    return on_request


@asynccontextmanager
async def openai_server(transport: FakeTransport) -> AsyncIterator[FakeOpenAIServer]:
    """A FakeOpenAIServer answering from ``transport``."""
    server = FakeOpenAIServer()
    server.on_request = openai_stand_in(server, transport)
    async with server:
        yield server


def _served(options: ModelOptions, server: FakeOpenAIServer) -> ModelOptions:
    """``options`` pointed at ``server`` (the port of a custom ``api_base`` is the server's)."""
    return dataclasses.replace(options, api_base=server.url)


_TIMEOUTS = HttpTimeouts(connect_s=2.0, first_byte_s=_ATTEMPT_S)


class TestOpenAICompatClient(ClientContract):
    model = "openai/served-model"
    options = ModelOptions(api_base="http://127.0.0.1:9/v1")
    provider_model = "served-model"
    uses_keys = True

    @asynccontextmanager
    async def serve(
        self, transport: FakeTransport, options: ModelOptions, keys: KeyPolicy
    ) -> AsyncIterator[ModelClient]:
        async with openai_server(transport) as server:
            options = _served(options, server)
            client = OpenAICompatClient({self.model: options}, keys=keys, timeouts=_TIMEOUTS)
            async with aclosing(client):
                yield client

    def test_assistant_prefix_continues_the_final_message(self) -> None:
        _, sent = self.answer(self.request(assistant_prefix="Step 1."))
        assert sent.arguments["messages"][-1] == {"role": "assistant", "content": "Step 1."}
        assert sent.arguments["continue_final_message"] is True
        assert sent.arguments["add_generation_prompt"] is False


# --- local: a fake Llama class (the sequential path) ----------------------------------------


def llama_stand_in(transport: FakeTransport) -> Any:
    """A ``Llama`` class answering ``create_chat_completion`` from ``transport``; a failure
    is the ``ValueError`` llama-cpp-python raises for a prompt longer than the context."""

    class FakeLlama:
        loaded: ClassVar[list[dict[str, Any]]] = []

        def __init__(self, **kwargs: Any) -> None:
            FakeLlama.loaded.append(kwargs)

        def create_chat_completion(self, **kwargs: Any) -> dict[str, Any]:
            outcome = transport.answer(kwargs)
            if isinstance(outcome, Failure):
                raise ValueError(f"Requested tokens exceed context window: {outcome.message}")
            return {
                "choices": [_openai_choice(0, outcome, bool(kwargs.get("logprobs")))],
                "usage": {
                    "prompt_tokens": outcome.prompt_tokens,
                    "completion_tokens": outcome.completion_tokens,
                },
            }

        def close(self) -> None:
            return None

    return FakeLlama


@asynccontextmanager
async def local_client(transport: FakeTransport) -> AsyncIterator[LocalClient]:
    """A sequential LocalClient on a fake Llama and an empty ``.gguf`` file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tiny.gguf"
        path.write_bytes(b"GGUF")
        client = LocalClient(
            paths={"*": path},
            n_threads=1,
            batched=False,
            engine_guard=EngineGuard(None, enabled=False),
            llama=llama_stand_in(transport),
        )
        async with aclosing(client):
            yield client


class TestLocalClient(ClientContract):
    model = "local/tiny"
    provider_model = None  # the model is the loaded file, not an argument
    logprobs_arguments: ClassVar[Mapping[str, object]] = {"logprobs": True, "top_logprobs": 1}
    failures = (BAD_REQUEST,)  # llama-cpp-python only refuses (a too-long prompt)
    reports_status = False

    @asynccontextmanager
    async def serve(
        self, transport: FakeTransport, options: ModelOptions, keys: KeyPolicy
    ) -> AsyncIterator[ModelClient]:
        async with local_client(transport) as client:
            yield client

    def test_logprobs_load_a_logits_all_model(self) -> None:
        async def check() -> list[dict[str, Any]]:
            async with local_client(FakeTransport()) as client:
                await client.complete(self.request())
                await client.complete(self.request(logprobs=True))
                await client.complete(self.request(logprobs=True))
                assert client._llama is not None
                return list(client._llama.loaded)

        loaded = asyncio.run(check())
        assert [entry["logits_all"] for entry in loaded] == [False, True]
        assert all(entry["model_path"].endswith("tiny.gguf") for entry in loaded)

    def test_assistant_prefix_needs_the_batched_engine(self) -> None:
        error, transport = self.call(self.request(assistant_prefix="Step 1."))
        assert isinstance(error, ModelCallError) and "batched local engine" in str(error)
        assert not error.retryable
        assert not transport.sent


# --- the scripted fake ------------------------------------------------------------------------


@asynccontextmanager
async def scripted_client(
    transport: FakeTransport, options: ModelOptions
) -> AsyncIterator[ScriptedClient]:
    """A ScriptedClient whose replies and failures come from ``transport``."""
    outcome: list[Reply | Failure] = []

    def fails(request: CompletionRequest) -> bool:
        arguments = {"model": request.model, "messages": list(request.messages)}
        outcome[:] = [transport.answer(arguments)]
        return isinstance(outcome[0], Failure)

    def text(request: CompletionRequest) -> str:
        reply = outcome[0]
        assert isinstance(reply, Reply) and reply.text is not None
        return reply.text

    def logprob(request: CompletionRequest, text: str) -> float | None:
        reply = outcome[0]
        assert isinstance(reply, Reply)
        return sum(reply.token_logprobs) / len(reply.token_logprobs)

    async with aclosing(
        ScriptedClient(text, fail_when=fails, price=options.price, logprob=logprob)
    ) as client:
        yield client


class TestScriptedClient(ClientContract):
    model = "m"
    translates = False  # the fake answers the request itself
    failures = (UNAVAILABLE,)  # its default injected failure: a retryable HTTP 503

    @asynccontextmanager
    async def serve(
        self, transport: FakeTransport, options: ModelOptions, keys: KeyPolicy
    ) -> AsyncIterator[ModelClient]:
        async with scripted_client(transport, options) as client:
            yield client

    def expected_response(self, request: CompletionRequest, reply: Reply) -> CompletionResponse:
        """The fake counts tokens itself (four characters each) and finishes by its cut."""
        expected = super().expected_response(request, reply)
        completion = expected.completions[0].model_copy(update={"finish_reason": "stop"})
        prompt = sum(fake_tokens(m.content) + 4 for m in request.messages)
        usage = Usage(calls=1, prompt_tokens=prompt, completion_tokens=fake_tokens(completion.text))
        return CompletionResponse(completions=(completion,), usage=usage)


# --- the router, in front of each backend ---------------------------------------------------


class _RouterContract(ClientContract):
    backend: ClassVar[type]

    def test_routes_to_its_backend(self) -> None:
        async def check() -> object:
            async with self.serve(FakeTransport(), self.options, KeyPolicy()) as client:
                assert isinstance(client, RouterClient)
                return client.client_for(self.model)

        assert isinstance(asyncio.run(check()), self.backend)


class TestRouterToLiteLLM(_RouterContract, TestLiteLLMClient):
    backend = LiteLLMClient

    @asynccontextmanager
    async def serve(
        self, transport: FakeTransport, options: ModelOptions, keys: KeyPolicy
    ) -> AsyncIterator[ModelClient]:
        stand_in = litellm_stand_in(transport)
        routed = {self.model: options}
        async with aclosing(
            RouterClient(
                routed, keys=keys, remote=lambda: LiteLLMClient(routed, keys=keys, litellm=stand_in)
            )
        ) as router:
            yield router


class TestRouterToOpenAICompat(_RouterContract, TestOpenAICompatClient):
    backend = OpenAICompatClient

    @asynccontextmanager
    async def serve(
        self, transport: FakeTransport, options: ModelOptions, keys: KeyPolicy
    ) -> AsyncIterator[ModelClient]:
        async with openai_server(transport) as server:
            routed = {self.model: _served(options, server)}
            router = RouterClient(routed, keys=keys, http_timeouts=_TIMEOUTS)
            async with aclosing(router):
                yield router


class TestRouterToLocal(_RouterContract, TestLocalClient):
    backend = LocalClient
    charges_price = False  # local calls cost nothing; a user price serves budget reservations

    @asynccontextmanager
    async def serve(
        self, transport: FakeTransport, options: ModelOptions, keys: KeyPolicy
    ) -> AsyncIterator[ModelClient]:
        async with local_client(transport) as local:
            router = RouterClient({self.model: options}, keys=keys, local=lambda: local)
            async with aclosing(router):
                yield router


# --- routing by model string and pipeline alias ---------------------------------------------


def _with_models(*specs: ModelSpec) -> Pipeline:
    return pipeline(node("gen", models=[s.alias for s in specs])).model_copy(
        update={"models": specs}
    )


def _sentinel(name: str) -> ModelClient:
    return ScriptedClient(lambda r: name)


@pytest.mark.parametrize(
    ("model", "options", "expected"),
    [
        ("local/qwen", ModelOptions(), "local"),
        ("local/qwen", ModelOptions(api_base="http://127.0.0.1:8000/v1"), "local"),
        ("openai/served", ModelOptions(api_base="http://127.0.0.1:8000/v1"), "compat"),
        ("openai/gpt-4o-mini", ModelOptions(), "remote"),
        ("anthropic/claude", ModelOptions(), "remote"),
        ("hosted_vllm/m", ModelOptions(api_base="http://127.0.0.1:8000/v1"), "remote"),
    ],
)
def test_router_sends_each_model_string_to_its_backend(
    model: str, options: ModelOptions, expected: str
) -> None:
    local, remote = _sentinel("local"), _sentinel("remote")
    router = RouterClient({model: options}, local=lambda: local, remote=lambda: remote)
    backend = router.client_for(model)
    if expected == "compat":
        assert isinstance(backend, OpenAICompatClient)
    else:
        assert backend is {"local": local, "remote": remote}[expected]
    assert router.client_for(model) is backend  # created once


def test_router_resolves_a_pipeline_alias_to_its_options() -> None:
    async def check() -> Sent:
        transport = FakeTransport()
        async with openai_server(transport) as server:
            spec = ModelSpec(
                alias="judge",
                model="openai/served",
                options=(
                    Param(name="api_base", value=server.url),
                    Param(name="usd_per_mtok_in", value=1.0),
                    Param(name="usd_per_mtok_out", value=2.0),
                ),
            )
            router = RouterClient.for_pipeline(_with_models(spec))
            try:
                request = CompletionRequest(
                    model="openai/served", messages=TestOpenAICompatClient().request().messages
                )
                response = await router.complete(request)
                assert response.usage.usd > 0
            finally:
                await router.aclose()
        return transport.sent[0]

    sent = asyncio.run(check())
    assert sent.arguments["model"] == "served"


@pytest.mark.parametrize(
    ("name", "value"),
    [("api_key", "sk-in-the-pipe-file-0123"), ("base_url", "http://x"), ("api_key_env", "PATH")],
)
def test_router_refuses_keys_and_redirects_written_in_a_pipe_file(name: str, value: str) -> None:
    spec = ModelSpec(alias="m", model="openai/x", options=(Param(name=name, value=value),))
    with pytest.raises(ArchonError):
        RouterClient.for_pipeline(_with_models(spec))
