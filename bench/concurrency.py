"""Concurrency of the runtime against a loopback OpenAI-compatible server with fixed latency.

    python bench/concurrency.py [--queries 50] [--concurrency 64] [--latency 0.2]

A fake server (aiohttp, in a child process) answers every chat completion after ``--latency``
seconds. 50 queries run through generate(5 samples) -> rank -> fuse via litellm
(``openai/<name>`` + ``api_base``). rank and fuse are bench-local layers making one call each
through ``ctx.complete`` (the real kinds are another issue). Reported: wall time vs the ideal
(``max(critical path, ceil(calls / concurrency) batches) x latency``) and vs sequential, plus
the client's CPU time per call. Goal: >= 0.9 of ideal.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import socket
import time
from collections.abc import Sequence
from typing import ClassVar

from archon.ir import Node, Param, Pipeline
from archon.layers import default_registry
from archon.layers.base import Flow, Layer, LayerContext, LayerEstimate, LayerParams
from archon.runtime import Limits, run_many
from archon.runtime.clients.base import ModelOptions
from archon.runtime.clients.litellm import LiteLLMClient, import_litellm
from archon.runtime.clients.openai_compat import OpenAICompatClient
from archon.values import Candidate, Candidates, CompletionRequest, Message, Payload


def _serve(port: int, latency: float) -> None:
    from aiohttp import web

    async def completions(request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(latency)
        return web.json_response(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "answer"},
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


class OneCallParams(LayerParams):
    model: str


class _OneCall(Layer):
    consumes = (Candidates,)
    produces = Candidates
    Params: ClassVar[type[LayerParams]] = OneCallParams

    @classmethod
    def estimate(
        cls, params: LayerParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        return LayerEstimate(output=Flow(1, 16))

    async def run(
        self, ctx: LayerContext, params: LayerParams, inputs: Sequence[Payload]
    ) -> Payload:
        assert isinstance(params, OneCallParams)
        texts = [c.text for p in inputs if isinstance(p, Candidates) for c in p.items]
        request = CompletionRequest(
            model=params.model,
            max_tokens=16,
            messages=(Message(role="user", content=f"{self.kind}: " + " | ".join(texts)),),
        )
        response = await ctx.complete(request)
        return Candidates(items=(Candidate(text=response.completions[0].text),))


class BenchRank(_OneCall):
    kind: ClassVar[str] = "rank"


class BenchFuse(_OneCall):
    kind: ClassVar[str] = "fuse"


def _pipeline(model: str, samples: int) -> Pipeline:
    def node(i: str, kind: str, inputs: tuple[str, ...], **params: object) -> Node:
        return Node(
            id=i,
            kind=kind,
            inputs=inputs,
            params=tuple(Param(name=k, value=v) for k, v in params.items()),
        )  # type: ignore[arg-type]

    return Pipeline(
        name="bench",
        output="fuse",
        nodes=(
            node(
                "gen",
                "generate",
                (),
                models=(model,),
                samples=samples,
                max_tokens=16,
                temperature=0.7,
            ),
            node("rank", "rank", ("gen",), model=model),
            node("fuse", "fuse", ("rank",), model=model),
        ),
    )


async def _bench(
    port: int, queries: int, concurrency: int, samples: int, lean: bool
) -> tuple[float, float]:
    model = "openai/fake"
    registry = default_registry().copy()
    for kind in ("rank", "fuse"):
        registry._layers.pop(kind, None)
    registry.register(BenchRank)
    registry.register(BenchFuse)
    options = {model: ModelOptions(api_base=f"http://127.0.0.1:{port}/v1", api_key="bench-key")}
    client: LiteLLMClient | OpenAICompatClient = (
        OpenAICompatClient(options) if lean else LiteLLMClient(options)
    )
    limits = Limits(max_concurrency=concurrency)
    pipeline = _pipeline(model, samples)
    # Warm up: import litellm and fill the connection pool (enough queries for `concurrency`
    # calls in flight), so the timed run measures the steady state of a long evaluation
    # rather than opening connections.
    warm = [f"warm {i}" for i in range(max(1, concurrency // samples))]
    async for _ in run_many(pipeline, warm, client=client, registry=registry, limits=limits):
        pass
    cpu, start = time.process_time(), time.perf_counter()
    failures = 0
    async for item in run_many(
        pipeline,
        [f"question {i}" for i in range(queries)],
        client=client,
        registry=registry,
        limits=limits,
        max_in_flight=queries,
    ):
        failures += not item.ok
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    await client.aclose()
    if failures:
        print(f"warning: {failures} queries failed")
    return wall, cpu


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    port = _free_port()
    server = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(port, args.latency), daemon=True
    )
    server.start()
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    import_litellm()
    calls = args.queries * (args.samples + 2)
    batches = max(3, math.ceil(calls / args.concurrency))
    ideal = batches * args.latency
    sequential = calls * args.latency
    print(
        f"{args.queries} queries x generate({args.samples}) -> rank -> fuse = {calls} calls, "
        f"latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}; "
        f"ideal {ideal:.2f}s, sequential {sequential:.1f}s"
    )
    try:
        for label, lean in (("litellm", False), ("openai_compat (aiohttp)", True)):
            bench = _bench(port, args.queries, args.concurrency, args.samples, lean)
            wall, cpu = asyncio.run(bench)
            print(
                f"{label:>22}: wall {wall:.2f}s, efficiency {ideal / wall:.2f} (goal >= 0.90),"
                f" {sequential / wall:.0f}x vs sequential, client CPU"
                f" {cpu / calls * 1000:.2f} ms/call"
            )
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
