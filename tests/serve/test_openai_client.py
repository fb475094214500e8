"""The official openai client against a served pipeline with a scripted backend."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import openai
import pytest

from archon.ir import Budget
from archon.runtime import MemoryTrace
from archon.runtime.clients.fake import ScriptedClient, fake_tokens
from archon.serve import ServerBudget, ServeSettings
from archon.values import CompletionRequest

from .conftest import DIRECT, KEY, VOTED, chunks_of, compile_text, run, serving, user

ANSWER = "The answer is 42, as everyone knows."


def scripted(**options: object) -> ScriptedClient:
    return ScriptedClient([(None, ANSWER)], **options)  # type: ignore[arg-type]


def test_plain_request_gets_the_pipeline_answer_and_usage() -> None:
    backend = scripted()

    async def main() -> None:
        async with serving(backend) as s:
            reply = await s.client.chat.completions.create(
                model="voted", messages=user("What is 6 x 7?")
            )
            assert reply.object == "chat.completion"
            assert reply.model == "voted"
            assert len(reply.choices) == 1
            assert reply.choices[0].message.content == ANSWER
            assert reply.choices[0].finish_reason == "stop"
            usage = reply.usage
            assert usage is not None
            # usage is the sum of the three generate calls the fake answered.
            prompt = sum(fake_tokens(m.content) + 4 for r in backend.requests for m in r.messages)
            assert len(backend.requests) == 3
            assert usage.prompt_tokens == prompt
            assert usage.completion_tokens == 3 * fake_tokens(ANSWER)
            assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
            extra = usage.model_extra or {}
            assert extra["archon"]["calls"] == 3
            assert extra["archon"]["cache_hits"] == 0
            assert extra["archon"]["nodes"]["generate_1"]["calls"] == 3
            assert reply.system_fingerprint and reply.system_fingerprint.startswith("archon-")

    run(main())


def test_n_runs_the_pipeline_with_different_seeds() -> None:
    backend = ScriptedClient([(None, "seed {seed}")])

    async def main() -> None:
        async with serving(backend) as s:
            reply = await s.client.chat.completions.create(
                model="direct", messages=user("hi"), n=2, seed=7
            )
            texts = [c.message.content for c in reply.choices]
            assert [c.index for c in reply.choices] == [0, 1]
            assert texts[0] == "seed 7"
            assert texts[1] != texts[0] and texts[1] is not None and texts[1].startswith("seed ")
            archon = (reply.usage.model_extra or {})["archon"]  # type: ignore[union-attr]
            assert archon["seeds"][0] == 7 and len(set(archon["seeds"])) == 2
            assert archon["calls"] == 2

    run(main())


def test_stream_of_a_direct_pipeline_sends_tokens_as_they_come() -> None:
    backend = scripted(chunk_chars=5, chunk_delay_s=0.005)

    async def main() -> None:
        async with serving(backend) as s:
            stream = await s.client.chat.completions.create(
                model="direct",
                messages=user("hi"),
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in stream]
            content = [c.choices[0].delta.content for c in chunks if c.choices]
            assert "".join(x or "" for x in content) == ANSWER
            pieces = [x for x in content if x]
            assert len(pieces) == -(-len(ANSWER) // 5)  # one chunk per backend piece
            assert chunks[0].choices[0].delta.role == "assistant"
            finish = [c.choices[0].finish_reason for c in chunks if c.choices]
            assert finish[-1] == "stop" and set(finish[:-1]) == {None}
            assert chunks[-1].choices == [] and chunks[-1].usage is not None
            assert chunks[-1].usage.completion_tokens > 0
            assert len({c.id for c in chunks}) == 1
        assert backend.streamed == 1

    run(main())


def test_stream_of_other_pipelines_sends_the_answer_at_the_end() -> None:
    backend = scripted()

    async def main() -> None:
        async with serving(backend) as s:
            stream = await s.client.chat.completions.create(
                model="voted", messages=user("hi"), stream=True, n=2
            )
            chunks = [chunk async for chunk in stream]
            by_choice: dict[int, str] = {0: "", 1: ""}
            for chunk in chunks:
                for choice in chunk.choices:
                    by_choice[choice.index] += choice.delta.content or ""
            assert by_choice == {0: ANSWER, 1: ANSWER}
            content = [c for c in chunks for ch in c.choices if ch.delta.content]
            assert len(content) == 2  # each answer in one piece
            assert chunks[-1].usage is None  # no usage chunk unless asked
        assert backend.streamed == 0

    run(main())


def test_concurrent_requests_are_all_answered() -> None:
    backend = ScriptedClient([(None, "answer to {query}")], latency_s=0.05)

    async def main() -> None:
        async with serving(backend) as s:
            replies = await asyncio.gather(
                *(
                    s.client.chat.completions.create(model="direct", messages=user(f"q{i}"))
                    for i in range(32)
                )
            )
            assert [r.choices[0].message.content for r in replies] == [
                f"answer to q{i}" for i in range(32)
            ]
            assert len({r.id for r in replies}) == 32
        assert backend.max_in_flight > 1  # they ran at the same time

    run(main())


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "nope", "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "direct", "messages": []}, "messages"),
        ({"model": "direct", "messages": [{"role": "assistant", "content": "x"}]}, "messages"),
        ({"model": "direct", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "direct", "messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        ({"model": "direct", "messages": [{"role": "user", "content": "x"}], "n": 0}, "n"),
        (
            {"model": "direct", "messages": [{"role": "user", "content": "x"}], "temperature": 9},
            "temperature",
        ),
        (
            {"model": "direct", "messages": [{"role": "user", "content": "x"}], "tools": [{}]},
            "tools",
        ),
        (
            {
                "model": "direct",
                "messages": [{"role": "user", "content": "x"}],
                "archon": {"max_cals": 3},
            },
            "archon.max_cals",
        ),
    ],
)
def test_bad_requests_get_400_with_the_field_at_fault(body: dict[str, object], param: str) -> None:
    async def main() -> None:
        async with serving(scripted()) as s:
            with pytest.raises(openai.BadRequestError) as caught:
                await s.client.post(
                    "/chat/completions", body=body, cast_to=openai.types.chat.ChatCompletion
                )
            assert caught.value.status_code == 400
            error = caught.value.body
            assert isinstance(error, dict)
            assert error["type"] == "invalid_request_error"
            assert error["param"] == param
            assert "Traceback" not in error["message"]

    run(main())


def test_malformed_json_and_unknown_routes_are_openai_shaped() -> None:
    async def main() -> None:
        async with serving(scripted()) as s, aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {KEY}"}
            async with http.post(
                s.url + "/chat/completions", data=b"{not json", headers=headers
            ) as reply:
                assert reply.status == 400
                body = await reply.json()
                assert body["error"]["type"] == "invalid_request_error"
            async with http.get(s.url + "/nothing", headers=headers) as reply:
                assert reply.status == 404
                assert (await reply.json())["error"]["code"] == "not_found"

    run(main())


def test_wrong_or_missing_key_gets_401() -> None:
    async def main() -> None:
        settings = ServeSettings(api_key=KEY)
        async with serving(scripted(), settings=settings, api_key="wrong") as s:
            with pytest.raises(openai.AuthenticationError) as caught:
                await s.client.chat.completions.create(model="direct", messages=user("x"))
            assert caught.value.status_code == 401
            assert caught.value.code == "invalid_api_key"
            async with aiohttp.ClientSession() as http:
                async with http.get(s.url + "/models") as reply:
                    assert reply.status == 401
                    assert reply.headers["WWW-Authenticate"] == "Bearer"
                # health and metrics stay open for load balancers and scrapers
                async with http.get(s.root + "/health") as reply:
                    assert reply.status == 200
            right = openai.AsyncOpenAI(base_url=s.url, api_key=KEY, max_retries=0)
            reply = await right.chat.completions.create(model="direct", messages=user("x"))
            assert reply.choices[0].message.content == ANSWER
            await right.close()

    run(main())


def test_exhausted_server_budget_gets_429_with_retry_after() -> None:
    backend = scripted()

    async def main() -> None:
        budget = ServerBudget(Budget(calls=4))
        async with serving(backend, budget=budget) as s:
            # 3 calls: fits; the next request needs 3 more and only 1 is left.
            await s.client.chat.completions.create(model="voted", messages=user("a"))
            with pytest.raises(openai.RateLimitError) as caught:
                await s.client.chat.completions.create(model="voted", messages=user("b"))
            error = caught.value
            assert error.status_code == 429
            assert int(error.response.headers["Retry-After"]) > 0
            assert error.response.headers["x-should-retry"] == "false"
            assert isinstance(error.body, dict) and error.body["code"] == "server_budget_exceeded"
            # Now spent entirely: refused before any call is made.
            calls = backend.calls
            with pytest.raises(openai.RateLimitError):
                await s.client.chat.completions.create(model="direct", messages=user("c"))
            assert backend.calls == calls

    run(main())


def test_budget_window_renews_and_says_when() -> None:
    now = [0.0]
    budget = ServerBudget(Budget(calls=1), window_s=60, clock=lambda: now[0])

    async def main() -> None:
        async with serving(scripted(), budget=budget) as s:
            await s.client.chat.completions.create(model="direct", messages=user("a"))
            now[0] = 20.0
            with pytest.raises(openai.RateLimitError) as caught:
                await s.client.chat.completions.create(model="direct", messages=user("b"))
            assert caught.value.response.headers["Retry-After"] == "40"
            assert "x-should-retry" not in caught.value.response.headers
            now[0] = 61.0
            reply = await s.client.chat.completions.create(model="direct", messages=user("c"))
            assert reply.choices[0].message.content == ANSWER

    run(main())


def test_per_request_budget_from_extra_body() -> None:
    backend = scripted()

    async def main() -> None:
        async with serving(backend) as s:
            with pytest.raises(openai.RateLimitError) as caught:
                await s.client.chat.completions.create(
                    model="voted", messages=user("a"), extra_body={"archon": {"max_calls": 2}}
                )
            assert isinstance(caught.value.body, dict)
            assert caught.value.body["code"] == "request_budget_exceeded"
            assert caught.value.response.headers["x-should-retry"] == "false"
            reply = await s.client.chat.completions.create(
                model="voted", messages=user("a"), extra_body={"archon": {"max_calls": 3}}
            )
            assert (reply.usage.model_extra or {})["archon"]["calls"] == 3  # type: ignore[union-attr]
            # The pipeline's own per-query budget is a 429 too, reported as its scope.
        # (set on the IR: the compiler refuses a budget the pipeline can never meet)
        budgeted = compile_text(VOTED).model_copy(
            update={"name": "budgeted", "budget": Budget(calls=2)}
        )
        async with serving(backend, [budgeted]) as s:
            with pytest.raises(openai.RateLimitError) as caught:
                await s.client.chat.completions.create(model="budgeted", messages=user("a"))
            assert isinstance(caught.value.body, dict)
            assert caught.value.body["code"] == "query_budget_exceeded"

    run(main())


def test_full_queue_gets_429_with_retry_after() -> None:
    backend = scripted(latency_s=0.3)

    async def main() -> None:
        settings = ServeSettings(max_concurrency=1, queue=1)
        async with serving(backend, settings=settings) as s:

            async def ask(i: int) -> object:
                try:
                    return await s.client.chat.completions.create(
                        model="direct", messages=user(f"q{i}")
                    )
                except openai.RateLimitError as error:
                    return error

            outcomes = await asyncio.gather(*(ask(i) for i in range(4)))
            refused = [o for o in outcomes if isinstance(o, openai.RateLimitError)]
            assert len(refused) == 2  # one running, one waiting, two refused
            for error in refused:
                assert int(error.response.headers["Retry-After"]) >= 1
                assert isinstance(error.body, dict) and error.body["code"] == "queue_full"

    run(main())


def test_failed_node_gets_500_naming_it() -> None:
    def fail(request: CompletionRequest) -> BaseException:
        from archon.runtime import ModelCallError

        return ModelCallError("upstream said no (HTTP 400)", model=request.model, status=400)

    backend = ScriptedClient(fail_when=lambda r: True, failure=fail)

    async def main() -> None:
        async with serving(backend) as s:
            with pytest.raises(openai.InternalServerError) as caught:
                await s.client.chat.completions.create(model="voted", messages=user("a"))
            body = caught.value.body
            assert caught.value.status_code == 500
            assert isinstance(body, dict)
            assert body["code"] == "node_failed" and body["node"] == "generate_1"
            assert "generate_1" in body["message"] and "upstream said no" in body["message"]
            assert "Traceback" not in body["message"]
            # The same failure inside a stream arrives as an error the client raises.
            with pytest.raises(openai.APIStatusError):
                stream = await s.client.chat.completions.create(
                    model="voted", messages=user("a"), stream=True
                )
                async for _ in stream:
                    pass

    run(main())


def test_error_after_a_stream_started_is_an_error_event() -> None:
    def fail(request: CompletionRequest) -> BaseException:
        from archon.runtime import ModelCallError

        return ModelCallError("late failure", model=request.model)

    backend = ScriptedClient(latency_s=0.2, fail_when=lambda r: True, failure=fail)

    async def main() -> None:
        settings = ServeSettings(keepalive_s=0.05)
        async with serving(backend, settings=settings) as s, aiohttp.ClientSession() as http:
            body = {"model": "voted", "messages": user("a"), "stream": True}
            headers = {"Authorization": f"Bearer {KEY}"}
            async with http.post(s.url + "/chat/completions", json=body, headers=headers) as r:
                assert r.status == 200  # started (keep-alives) before the failure
                raw = (await r.read()).decode()
            assert ": keep-alive" in raw
            error = chunks_of(raw)[-1]
            assert error["error"]["code"] == "node_failed"
            with pytest.raises(openai.APIError, match="late failure"):
                stream = await s.client.chat.completions.create(
                    model="voted", messages=user("a"), stream=True
                )
                async for _ in stream:
                    pass

    run(main())


def test_keepalive_comments_while_inner_calls_run() -> None:
    backend = scripted(latency_s=0.3)

    async def main() -> None:
        settings = ServeSettings(keepalive_s=0.05)
        async with serving(backend, settings=settings) as s, aiohttp.ClientSession() as http:
            body = {"model": "voted", "messages": user("a"), "stream": True}
            headers = {"Authorization": f"Bearer {KEY}"}
            async with http.post(s.url + "/chat/completions", json=body, headers=headers) as r:
                assert r.headers["Content-Type"].startswith("text/event-stream")
                raw = (await r.read()).decode()
            assert raw.count(": keep-alive\n\n") >= 2
            assert raw.endswith("data: [DONE]\n\n")
            chunks = chunks_of(raw)
            assert (
                "".join(
                    c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
                )
                == ANSWER
            )

    run(main())


def test_sampling_fields_override_only_a_direct_pipeline() -> None:
    backend = scripted()

    async def main() -> None:
        async with serving(backend) as s:
            reply = await s.client.chat.completions.create(
                model="direct", messages=user("a"), temperature=0.3, max_tokens=7, top_p=0.5
            )
            sent = backend.requests[-1]
            assert (sent.temperature, sent.max_tokens, sent.top_p) == (0.3, 7, 0.5)
            assert (reply.usage.model_extra or {})["archon"]["ignored"] == []  # type: ignore[union-attr]
            before = len(backend.requests)
            reply = await s.client.chat.completions.create(
                model="voted", messages=user("a"), temperature=0.3, max_tokens=7, stop=["x"]
            )
            assert all(r.max_tokens == 512 for r in backend.requests[before:])
            ignored = (reply.usage.model_extra or {})["archon"]["ignored"]  # type: ignore[union-attr]
            assert ignored == ["temperature", "max_tokens", "stop"]
        async with serving(backend, settings=ServeSettings(client_sampling=False)) as s:
            await s.client.chat.completions.create(model="direct", messages=user("b"), max_tokens=7)
            assert backend.requests[-1].max_tokens == 64  # the pipeline's own value

    run(main())


def test_models_lists_the_served_names() -> None:
    async def main() -> None:
        async with serving(scripted(), [DIRECT, VOTED]) as s:
            models = await s.client.models.list()
            assert [m.id for m in models.data] == ["direct", "voted"]
            assert all(m.owned_by == "archon" for m in models.data)
            one = await s.client.models.retrieve("voted")
            assert (one.model_extra or {})["archon"]["streams_tokens"] is False
            with pytest.raises(openai.NotFoundError):
                await s.client.models.retrieve("nope")

    run(main())


def test_traces_get_the_request_id_and_the_choice() -> None:
    trace = MemoryTrace()

    async def main() -> str:
        async with serving(scripted(), trace=trace) as s:
            reply = await s.client.chat.completions.create(model="direct", messages=user("a"), n=2)
            return reply.id

    request_id = run(main())
    assert {r.request_id for r in trace.records} == {request_id}
    assert sorted(r.query_index for r in trace.records if r.query_index is not None) == [0, 1]


def test_cache_hits_are_reported_and_free(tmp_path: object) -> None:
    from pathlib import Path

    from archon.runtime import CallCache

    backend = scripted()
    cache = CallCache(Path(str(tmp_path)) / "cache.sqlite")

    async def main() -> None:
        async with serving(backend, cache=cache) as s:
            first = await s.client.chat.completions.create(model="direct", messages=user("a"))
            again = await s.client.chat.completions.create(
                model="direct", messages=user("a"), stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in again if c.choices])
            assert text == first.choices[0].message.content
            cached = await s.client.chat.completions.create(model="direct", messages=user("a"))
            archon = (cached.usage.model_extra or {})["archon"]  # type: ignore[union-attr]
            assert archon["cache_hits"] == 1 and archon["calls"] == 0
            assert cached.usage.total_tokens == 0  # type: ignore[union-attr]

    run(main())
    cache.close()
    assert backend.calls == 1


def test_health_reports_models_and_load() -> None:
    async def main() -> None:
        async with serving(scripted()) as s, aiohttp.ClientSession() as http:
            async with http.get(s.root + "/health") as reply:
                body = json.loads(await reply.text())
            assert body["status"] == "ok" and body["models"] == ["direct", "voted"]

    run(main())


def test_once_shutting_down_new_requests_get_503() -> None:
    async def main() -> None:
        async with serving(scripted()) as s, aiohttp.ClientSession() as http:
            await s.app.shutdown()  # what SIGTERM triggers before waiting for requests
            with pytest.raises(openai.APIStatusError) as caught:
                await s.client.chat.completions.create(model="direct", messages=user("a"))
            assert caught.value.status_code == 503
            assert caught.value.response.headers["Retry-After"] == "1"
            async with http.get(s.root + "/health") as reply:
                assert reply.status == 503
                assert (await reply.json())["status"] == "draining"

    run(main())


def test_a_client_that_goes_away_cancels_its_pipeline() -> None:
    backend = scripted(latency_s=2.0)

    async def main() -> str:
        async with serving(backend) as s, aiohttp.ClientSession() as http:
            body = {"model": "voted", "messages": user("a")}
            headers = {"Authorization": f"Bearer {KEY}"}
            with pytest.raises(asyncio.TimeoutError):
                timeout = aiohttp.ClientTimeout(total=0.3)
                await http.post(
                    s.url + "/chat/completions", json=body, headers=headers, timeout=timeout
                )
            for _ in range(100):
                if backend.in_flight == 0:
                    break
                await asyncio.sleep(0.02)
            assert backend.calls == 3 and backend.in_flight == 0
            assert backend.intervals == []  # no call ran to its end
            async with http.get(s.root + "/metrics") as reply:
                return await reply.text()

    assert 'archon_requests_total{model="voted",status="499"} 1' in run(main())
