"""Runtime support of step-level search: budget_left, http_json, the scripted client's step
continuations and scores, and the OpenAI-compatible continuation body."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from archon.ir import Budget
from archon.runtime import Limits, Meter, Reservation
from archon.runtime.clients.base import ModelCallError, ModelOptions
from archon.runtime.clients.fake import ScriptedClient, prompt_text
from archon.runtime.clients.openai_compat import OpenAICompatClient
from archon.runtime.context import NodeContext, QueryState, budget_left
from archon.runtime.env import RunEnv
from archon.runtime.http import post_json
from archon.values import CompletionRequest, Message, Usage

MESSAGES = (Message(role="user", content="What is 6 times 7?"),)


def test_budget_left_is_the_tightest_scope_with_held_amounts_counted() -> None:
    async def main() -> None:
        run_meter = Meter(Budget(calls=10, usd=1.0), scope="run")
        meter = Meter(Budget(calls=5, tokens=1000, seconds=60.0), parent=run_meter)
        held = await meter.reserve(Reservation(1, 300, 0.25))
        left = budget_left(meter)
        assert (left.calls, left.tokens, left.usd) == (4, 700, 0.75)
        assert left.seconds is not None and 59.0 < left.seconds <= 60.0
        meter.settle(held, Usage(calls=1, prompt_tokens=50, completion_tokens=50, usd=0.1))
        other = await run_meter.reserve(Reservation(7, 0, 0.0))  # another query of the run
        run_meter.settle(other, Usage(calls=7))
        left = budget_left(meter)
        assert (left.calls, left.tokens) == (2, 900) and left.usd == pytest.approx(0.9)

    asyncio.run(main())


def test_unlimited_budget_leaves_everything_none() -> None:
    left = budget_left(Meter())
    assert (left.calls, left.tokens, left.usd, left.seconds) == (None, None, None, None)


class JsonServer:
    """A loopback server answering POSTs with scripted (status, text) replies, in order."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, str]] = []
        self.seen: list[Any] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                owner.seen.append(json.loads(body))
                status, text = owner.replies.pop(0) if owner.replies else (200, "{}")
                data = text.encode()
                self.send_response(status)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/score"


@pytest.fixture
def server() -> Iterator[JsonServer]:
    fake = JsonServer()
    thread = threading.Thread(target=fake.httpd.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()
    thread.join(timeout=5)


def test_post_json_round_trip_and_error_classes(server: JsonServer) -> None:
    url = server.url
    server.replies = [(200, '{"scores": [0.5]}'), (404, "no"), (503, "busy"), (200, "<html>")]

    async def main() -> None:
        assert await post_json(url, {"steps": ["a"]}) == {"scores": [0.5]}
        with pytest.raises(ModelCallError) as not_found:
            await post_json(url, {})
        assert not not_found.value.retryable and not_found.value.status == 404
        with pytest.raises(ModelCallError) as busy:
            await post_json(url, {})
        assert busy.value.retryable and "HTTP 503: busy" in str(busy.value)
        with pytest.raises(ModelCallError, match="not JSON") as html:
            await post_json(url, {})
        assert not html.value.retryable

    asyncio.run(main())
    assert server.seen[0] == {"steps": ["a"]}


def test_post_json_to_a_closed_port_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ModelCallError) as info:
        asyncio.run(post_json(f"http://127.0.0.1:{port}/", {}))
    assert info.value.retryable


def test_context_http_json_retries_under_the_limits(server: JsonServer) -> None:
    server.replies = [(503, "busy"), (200, '{"ok": true}')]
    state = QueryState(
        env=RunEnv(client=ScriptedClient(), limits=Limits(retries=2, backoff_s=0.0, jitter=0.0)),
        meter=Meter(Budget(calls=1)),
        query=MESSAGES,
    )
    ctx = NodeContext(state, "node")
    assert asyncio.run(ctx.http_json(server.url, {"x": 1})) == {"ok": True}
    assert len(server.seen) == 2
    assert state.meter.spent.calls == 0  # not a model call
    assert ctx.budget_left().calls == 1


def test_scripted_client_cuts_at_stop_and_sees_the_prefix() -> None:
    client = ScriptedClient([(r"Step 1", "Step 2.\n\nStep 3.")])
    request = CompletionRequest(
        model="m", messages=MESSAGES, stop=("\n\n",), assistant_prefix="Step 1.\n\n"
    )
    assert "Step 1." in prompt_text(request)
    response = asyncio.run(client.complete(request))
    assert response.completions[0].text == "Step 2."
    assert response.completions[0].finish_reason == "stop"
    assert (
        response.usage.prompt_tokens
        > asyncio.run(
            client.complete(request.model_copy(update={"assistant_prefix": None}))
        ).usage.prompt_tokens
    )


def test_scripted_client_scores_a_prefix() -> None:
    def logprob(request: CompletionRequest, text: str) -> float | None:
        return -0.1 if request.assistant_prefix == "Yes" else None

    client = ScriptedClient([(None, "ignored")], logprob=logprob)
    request = CompletionRequest(
        model="m", messages=MESSAGES, assistant_prefix="Yes", score_only=True
    )
    completion = asyncio.run(client.complete(request)).completions[0]
    assert completion.text == "" and completion.logprob == -0.1
    plain = asyncio.run(client.complete(CompletionRequest(model="m", messages=MESSAGES)))
    assert plain.completions[0].logprob is None  # logprobs were not asked for
    with pytest.raises(ModelCallError, match="score_only") as info:
        asyncio.run(ScriptedClient(score_only=False).complete(request))
    assert not info.value.retryable


def test_openai_compat_body_continues_a_trailing_assistant_message() -> None:
    client = OpenAICompatClient({"openai/q": ModelOptions(api_base="http://127.0.0.1:1/v1")})
    request = CompletionRequest(
        model="openai/q", messages=MESSAGES, stop=("\n\n",), assistant_prefix="Step 1.\n\n"
    )
    body = client.body(request)
    assert body["messages"][-1] == {"role": "assistant", "content": "Step 1.\n\n"}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert body["stop"] == ["\n\n"]
    fresh = client.body(request.model_copy(update={"assistant_prefix": None}))
    assert fresh["messages"][-1]["role"] == "user"
    assert "continue_final_message" not in fresh and "add_generation_prompt" not in fresh
