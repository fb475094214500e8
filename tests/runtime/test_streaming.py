"""Streaming one node's call (StreamTap) and the clients' optional ``stream``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from archon.layers.registry import Registry
from archon.runtime import (
    CallCache,
    Limits,
    MemoryTrace,
    ModelCallError,
    NodeFailed,
    StreamingClient,
    StreamTap,
    run,
)
from archon.runtime.clients.base import ModelOptions
from archon.runtime.clients.fake import ScriptedClient
from archon.runtime.clients.openai_compat import OpenAICompatClient
from archon.runtime.clients.router import RouterClient
from archon.testing.openai_server import FakeOpenAIServer
from archon.values import Completion, CompletionRequest, CompletionResponse, Message, Usage

from .conftest import node, pipeline

TEXT = "Streaming answers arrive in pieces."


def _tapped() -> tuple[StreamTap, list[str]]:
    pieces: list[str] = []
    return StreamTap("gen", pieces.append), pieces


def test_tapped_node_streams_and_the_call_is_still_metered_and_traced(
    registry: Registry, fast_limits: Limits
) -> None:
    client = ScriptedClient([(None, TEXT)], chunk_chars=6)
    trace = MemoryTrace()
    tap, pieces = _tapped()
    p = pipeline(node("gen", max_tokens=64))
    result = asyncio.run(
        run(
            p,
            "q",
            client=client,
            registry=registry,
            limits=fast_limits,
            trace=trace,
            stream_tap=tap,
        )
    )
    assert "".join(pieces) == TEXT == result.answer
    assert len(pieces) == -(-len(TEXT) // 6)
    assert client.streamed == 1 and tap.sent
    assert result.usage.calls == 1 and result.usage.completion_tokens > 0
    assert len(trace.records) == 1 and trace.records[0].node_id == "gen"


def test_only_the_tapped_node_streams(registry: Registry, fast_limits: Limits) -> None:
    client = ScriptedClient([(None, TEXT)])
    tap = StreamTap("other", lambda piece: pytest.fail("nothing should stream"))
    p = pipeline(node("gen", samples=2))
    asyncio.run(run(p, "q", client=client, registry=registry, limits=fast_limits, stream_tap=tap))
    assert client.streamed == 0 and client.calls == 2


def test_a_cache_hit_streams_nothing(
    registry: Registry, fast_limits: Limits, tmp_path: Path
) -> None:
    client = ScriptedClient([(None, TEXT)])
    cache = CallCache(tmp_path / "c.sqlite")
    p = pipeline(node("gen"))
    options = {"client": client, "registry": registry, "limits": fast_limits, "cache": cache}
    asyncio.run(run(p, "q", **options))  # type: ignore[arg-type]
    tap, pieces = _tapped()
    result = asyncio.run(run(p, "q", stream_tap=tap, **options))  # type: ignore[arg-type]
    cache.close()
    assert result.answer == TEXT and result.cache_hits == 1 and pieces == []


class _Breaks:
    """Streams two pieces, then fails with a retryable error (``after=0``: fails at once)."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.attempts = 0

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        raise AssertionError("a tapped call must stream")

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str | CompletionResponse]:
        self.attempts += 1
        if self.attempts == 1:
            for piece in ("one ", "two ")[: self.after]:
                yield piece
            raise ModelCallError("dropped (HTTP 503)", model=request.model, retryable=True)
        yield "whole"
        yield CompletionResponse(completions=(Completion(text="whole"),), usage=Usage(calls=1))

    async def aclose(self) -> None:
        pass


def test_a_stream_that_broke_after_sending_text_is_not_retried(
    registry: Registry, fast_limits: Limits
) -> None:
    client = _Breaks(after=2)
    assert isinstance(client, StreamingClient)
    tap, pieces = _tapped()
    with pytest.raises(NodeFailed, match="not retried"):
        asyncio.run(
            run(
                pipeline(node("gen")),
                "q",
                client=client,
                registry=registry,
                limits=fast_limits,
                stream_tap=tap,
            )
        )
    assert pieces == ["one ", "two "] and client.attempts == 1


def test_a_stream_that_failed_before_any_text_is_retried(
    registry: Registry, fast_limits: Limits
) -> None:
    client = _Breaks(after=0)
    tap, pieces = _tapped()
    result = asyncio.run(
        run(
            pipeline(node("gen")),
            "q",
            client=client,
            registry=registry,
            limits=fast_limits,
            stream_tap=tap,
        )
    )
    assert result.answer == "whole" and pieces == ["whole"] and client.attempts == 2


def _request(model: str = "openai/fake") -> CompletionRequest:
    return CompletionRequest(model=model, messages=(Message(role="user", content="hello"),))


def test_openai_compat_client_streams_sse_chunks() -> None:
    async def main() -> None:
        async with FakeOpenAIServer(reply="pieces of {query}", chunk_chars=3) as fake:
            client = OpenAICompatClient({"openai/fake": ModelOptions(api_base=fake.url)})
            items = [item async for item in client.stream(_request())]
            await client.aclose()
            body = fake.bodies[0]
        *pieces, final = items
        assert all(isinstance(p, str) for p in pieces)
        assert "".join(pieces) == "pieces of hello"  # type: ignore[arg-type]
        assert len(pieces) == 5
        assert isinstance(final, CompletionResponse)
        assert final.completions[0].text == "pieces of hello"
        assert final.completions[0].finish_reason == "stop"
        assert final.usage.prompt_tokens == 10 and final.usage.calls == 1
        assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
        assert body["model"] == "fake"

    asyncio.run(main())


def test_openai_compat_stream_errors_are_classified() -> None:
    async def main() -> None:
        async with FakeOpenAIServer(fail_status=503) as fake:
            client = OpenAICompatClient({"openai/fake": ModelOptions(api_base=fake.url)})
            with pytest.raises(ModelCallError) as caught:
                async for _ in client.stream(_request()):
                    pass
            await client.aclose()
        assert caught.value.retryable and caught.value.status == 503

    asyncio.run(main())


def test_router_streams_from_a_streaming_backend_and_falls_back_otherwise() -> None:
    class Plain:
        async def complete(self, request: CompletionRequest) -> CompletionResponse:
            return CompletionResponse(completions=(Completion(text="plain"),), usage=Usage(calls=1))

        async def aclose(self) -> None:
            pass

    async def main() -> None:
        streaming = RouterClient(remote=lambda: ScriptedClient([(None, "abcdefgh")]))
        plain = RouterClient(remote=Plain)
        got = [item async for item in streaming.stream(_request("openai/x"))]
        assert got[:2] == ["abcd", "efgh"] and isinstance(got[2], CompletionResponse)
        only = [item async for item in plain.stream(_request("openai/x"))]
        assert len(only) == 1 and isinstance(only[0], CompletionResponse)

    asyncio.run(main())
