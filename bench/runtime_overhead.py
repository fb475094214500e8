"""Runtime overhead per model call, and local-client throughput vs raw llama-cpp-python.

    python bench/runtime_overhead.py [--calls 10000] [--model smollm2-135m|qwen2.5-coder-0.5b]

1. Per-call overhead of ``ctx.complete`` (limits, meter, context, executor) with an instant
   fake client, over ``--calls`` calls: sequential calls, and one node sampling them all at
   once. Goal: <= 50 us/call.
2. Tokens/s of the same greedy prompt through the runtime's LocalClient and through a raw
   ``llama_cpp.Llama.create_chat_completion``. Goal: runtime <= 3 % slower. Skipped when
   llama-cpp-python or the model file is missing (``archon models pull``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

from archon.ir import Node, Param, Pipeline
from archon.runtime import Limits, Meter, run
from archon.runtime.context import NodeContext, QueryState
from archon.runtime.env import RunEnv
from archon.values import Completion, CompletionRequest, CompletionResponse, Message, Usage

PROMPT = "Write a Python function that returns the n-th Fibonacci number, with a docstring."


class InstantClient:
    """Answers at once with a fixed response (measures only the runtime around it)."""

    def __init__(self) -> None:
        self._response = CompletionResponse(
            completions=(Completion(text="ok"),), usage=Usage(calls=1, prompt_tokens=5)
        )

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        return self._response

    async def aclose(self) -> None:
        return None


async def _sequential(calls: int) -> float:
    client = InstantClient()
    state = QueryState(
        env=RunEnv(client=client), meter=Meter(), query=(Message(role="user", content="q"),)
    )
    ctx = NodeContext(state, "bench")
    request = CompletionRequest(model="fake/instant", messages=state.query, max_tokens=16)
    raw_start = time.perf_counter()
    for _ in range(calls):
        await client.complete(request)
    raw = time.perf_counter() - raw_start
    start = time.perf_counter()
    for _ in range(calls):
        await ctx.complete(request)
    return (time.perf_counter() - start - raw) / calls


async def _pipeline(calls: int) -> float:
    node = Node(
        id="gen",
        kind="generate",
        params=(
            Param(name="models", value=("fake/instant",)),
            Param(name="samples", value=calls),
            Param(name="max_tokens", value=16),
        ),
    )
    pipeline = Pipeline(name="bench", nodes=(node,), output="gen")
    start = time.perf_counter()
    await run(pipeline, "q", client=InstantClient(), limits=Limits(max_concurrency=calls))
    return (time.perf_counter() - start) / calls


def overhead(calls: int) -> None:
    seq = min(asyncio.run(_sequential(calls)) for _ in range(3))
    fan = min(asyncio.run(_pipeline(min(calls, 1024))) for _ in range(3))
    print(f"runtime overhead, sequential ctx.complete: {seq * 1e6:.1f} us/call ({calls} calls)")
    print(
        f"runtime overhead, one node sampling {min(calls, 1024)} at once: "
        f"{fan * 1e6:.1f} us/call (executor + task per sample)"
    )
    print(f"goal <= 50 us/call: {'met' if seq <= 50e-6 else 'NOT met'}")


def _model_file(name: str) -> Path | None:
    from archon.runtime.clients.local.models import is_installed, known_model
    from archon.runtime.home import archon_home

    model = known_model(name)
    path = archon_home() / "models" / model.filename
    return path if is_installed(model, archon_home()) else None


def local_throughput(name: str, max_tokens: int, repeats: int) -> None:
    try:
        from llama_cpp import Llama
    except ImportError:
        print("local throughput: skipped (llama-cpp-python not installed)")
        return
    path = _model_file(name)
    if path is None:
        print(f"local throughput: skipped ({name} not installed: archon models pull {name})")
        return
    from archon.runtime.clients.local.client import LocalClient, available_threads

    threads = available_threads()
    messages = [{"role": "user", "content": PROMPT}]
    llm = Llama(model_path=str(path), n_ctx=4096, n_threads=threads, verbose=False, seed=0)

    def raw_rate() -> float:
        start = time.perf_counter()
        out = llm.create_chat_completion(
            messages=messages, max_tokens=max_tokens, temperature=0.0, seed=0
        )
        return float(out["usage"]["completion_tokens"]) / (time.perf_counter() - start)

    async def interleaved() -> tuple[list[float], list[float]]:
        client = LocalClient(paths={name: path}, n_threads=threads)
        state = QueryState(
            env=RunEnv(client=client),
            meter=Meter(),
            query=(Message(role="user", content=PROMPT),),
        )
        ctx = NodeContext(state, "bench")
        request = CompletionRequest(
            model=f"local/{name}",
            messages=state.query,
            max_tokens=max_tokens,
            temperature=0.0,
            seed=0,
        )
        raw_rate()  # warm both up (page in the weights) outside the timing
        await ctx.complete(request)
        raw, ours = [], []
        for _ in range(repeats):  # alternate so machine-load drift hits both alike
            raw.append(raw_rate())
            start = time.perf_counter()
            response = await ctx.complete(request)
            ours.append(response.usage.completion_tokens / (time.perf_counter() - start))
        await client.aclose()
        return raw, ours

    raw, ours = asyncio.run(interleaved())
    llm.close()
    r, o = statistics.median(raw), statistics.median(ours)
    print(
        f"local {name} ({threads} threads, {max_tokens} tokens, median of {repeats}): "
        f"raw llama-cpp {r:.1f} tok/s, archon runtime {o:.1f} tok/s, ratio {o / r:.3f}"
    )
    print(f"goal runtime >= 0.97 x raw: {'met' if o >= 0.97 * r else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--model", default=os.environ.get("BENCH_MODEL", "qwen2.5-coder-0.5b"))
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    overhead(args.calls)
    local_throughput(args.model, args.max_tokens, args.repeats)


if __name__ == "__main__":
    main()
