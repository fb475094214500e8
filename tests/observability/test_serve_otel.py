"""``archon serve`` with OpenTelemetry: each request is a span under the caller's
``traceparent``, with its choices, nodes and calls below, and the server's key nowhere."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from archon.compiler import compile_source
from archon.compiler.structure import assign
from archon.layers import default_registry
from archon.observability.otel import Otel
from archon.runtime import Limits, RunEnv
from archon.runtime.clients.fake import ScriptedClient
from archon.serve import ServedPipeline, ServeSettings, create_app
from archon.serve import start as start_server

pytest.importorskip("opentelemetry.sdk")

PIPE = 'models { m = "openai/m" }\npipeline voted { generate(models = [m], samples = 2) vote() }\n'
SERVER_KEY = "serve-key-5f0e9a7c2b14d3e6"
TRACE_ID, PARENT_ID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"


async def _exchange(
    provider: Any, bodies: list[dict[str, Any]], headers: list[dict[str, str]]
) -> list[tuple[int, str, str]]:
    registry = default_registry()
    pipeline = assign(compile_source(PIPE, "t.pipe", registry), None, registry)[0]
    served = [ServedPipeline.build("voted", pipeline, registry)]
    env = RunEnv(
        client=ScriptedClient(lambda r: f"4 ({SERVER_KEY})", latency_s=0.01),
        registry=registry,
        limits=Limits(timeout_s=10.0),
    )
    app = create_app(served, env, settings=ServeSettings(api_key=SERVER_KEY), otel=Otel(provider))
    server = await start_server(app, "127.0.0.1", 0, shutdown_timeout_s=5.0)
    replies = []
    try:
        async with aiohttp.ClientSession() as session:
            for body, extra in zip(bodies, headers, strict=True):
                sent = {"Authorization": f"Bearer {SERVER_KEY}", **extra}
                url = server.url + "/chat/completions"
                async with session.post(url, json=body, headers=sent) as response:
                    replies.append(
                        (
                            response.status,
                            response.headers.get("x-request-id", ""),
                            await response.text(),
                        )
                    )
    finally:
        await server.stop()
    return replies


def test_a_request_continues_the_callers_trace(spans: Any) -> None:
    exporter, provider = spans
    question = [{"role": "user", "content": f"2 + 2? {SERVER_KEY}"}]
    parent = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
    replies = asyncio.run(
        _exchange(
            provider,
            [
                {"model": "voted", "messages": question, "n": 2},
                {"model": "voted", "messages": question, "stream": True},
            ],
            [parent, {}],
        )
    )
    assert [status for status, _, _ in replies] == [200, 200]
    request_id = replies[0][1]

    finished = exporter.get_finished_spans()
    roots = [s for s in finished if s.name == "archon serve"]
    assert len(roots) == 2
    first = next(s for s in roots if s.attributes["archon.request.id"] == request_id)
    second = next(s for s in roots if s is not first)
    assert f"{first.context.trace_id:032x}" == TRACE_ID
    assert f"{first.parent.span_id:016x}" == PARENT_ID and first.kind.name == "SERVER"
    assert first.attributes["archon.pipeline"] == "voted"
    assert second.parent is None and f"{second.context.trace_id:032x}" != TRACE_ID

    def children(span: Any) -> list[Any]:
        return [
            s for s in finished if s.parent is not None and s.parent.span_id == span.context.span_id
        ]

    choices = children(first)
    assert sorted(s.name for s in choices) == ["query 0", "query 1"]
    for choice in choices:
        nodes = {s.attributes["archon.node.kind"]: s for s in children(choice)}
        assert set(nodes) == {"generate", "vote"}
        calls = children(nodes["generate"])
        assert len(calls) == 2
        assert all(
            c.attributes["archon.query.index"] == choice.attributes["archon.query.index"]
            for c in calls
        )
    streamed = children(second)
    assert sorted(s.name for s in streamed) == ["query 0"]
    for span in finished:
        assert SERVER_KEY not in span.to_json(), span.name
    assert json.loads(replies[0][2])["choices"][0]["message"]["content"].startswith("4")
