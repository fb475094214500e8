"""Batched vs sequential sampling on the embedded engine, in one run on one machine.

    python bench/local_sampling.py [--model qwen2.5-coder-0.5b] [--tokens 256] [--ns 1,2,4,8]

Through the runtime (``ctx.complete`` with ``n`` samples, as a ``generate`` node calls it):

1. n=1: the batched engine against raw llama-cpp-python ``create_chat_completion`` (greedy,
   interleaved runs, median tokens/s). Goal: >= 0.97.
2. For each n in ``--ns``: n samples at temperature 0.8 with the old sequential client
   (``LocalClient(batched=False)``: one ``create_chat_completion`` at a time) and with the
   batched engine; wall-clock ratio batched/sequential.
3. n=5 (``--repeats`` interleaved pairs, median), printed last as
   ``n=5 batched/sequential wall ratio: X.XX``. Goal: <= 0.60.

Every sample is asked for ``--tokens`` tokens. End of sequence is not disabled (the request
API has no such switch): the prompt asks for a long program, which the coder model does not
finish within 256 tokens, and the script prints a warning when a sample stopped early (the
tokens/s figures count the tokens actually generated). The call cache is not used.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from archon.runtime import Limits, Meter
from archon.runtime.clients.local.client import LocalClient, available_threads
from archon.runtime.context import NodeContext, QueryState
from archon.runtime.env import RunEnv
from archon.values import CompletionRequest, CompletionResponse, Message

PROMPT = (
    "Write a complete Python module implementing a red-black tree with insert, delete, search, "
    "in-order, pre-order and post-order traversal, and a pretty printer. Give every class and "
    "function a detailed docstring and type hints, then write an extensive unittest suite."
)


def _model_file(name: str) -> Path | None:
    from archon.runtime.clients.local.models import is_installed, known_model
    from archon.runtime.home import archon_home

    model = known_model(name)
    path = archon_home() / "models" / model.filename
    return path if is_installed(model, archon_home()) else None


async def _sample(
    client: LocalClient, model: str, n: int, tokens: int, temperature: float
) -> tuple[float, CompletionResponse]:
    """Wall seconds of ``n`` samples of one request through the runtime."""
    query = (Message(role="user", content=PROMPT),)
    state = QueryState(
        env=RunEnv(client=client, limits=Limits(timeout_s=None)), meter=Meter(), query=query
    )
    ctx = NodeContext(state, "bench")
    request = CompletionRequest(
        model=model, messages=query, n=n, max_tokens=tokens, temperature=temperature, seed=1
    )
    start = time.perf_counter()
    response = await ctx.complete(request)
    return time.perf_counter() - start, response


def _check_length(label: str, response: CompletionResponse, tokens: int) -> None:
    n = response.usage.completion_tokens
    expected = tokens * len(response.completions)
    if n < expected:
        print(f"  warning: {label}: {n} of {expected} tokens (a sample stopped early)")


async def _raw_vs_batched(
    path: Path, batched: LocalClient, model: str, tokens: int, repeats: int
) -> None:
    from llama_cpp import Llama

    threads = available_threads()
    llm = Llama(model_path=str(path), n_ctx=4096, n_threads=threads, verbose=False, seed=0)
    messages: Any = [{"role": "user", "content": PROMPT}]

    def raw() -> float:
        start = time.perf_counter()
        out = llm.create_chat_completion(
            messages=messages, max_tokens=tokens, temperature=0.0, seed=0
        )
        return float(out["usage"]["completion_tokens"]) / (time.perf_counter() - start)

    raw()  # warm up outside the timing
    raw_rates, ours = [], []
    for _ in range(repeats):  # alternate so machine-load drift hits both alike
        raw_rates.append(await asyncio.to_thread(raw))
        seconds, response = await _sample(batched, model, 1, tokens, 0.0)
        ours.append(response.usage.completion_tokens / seconds)
    llm.close()
    r, o = statistics.median(raw_rates), statistics.median(ours)
    print(
        f"n=1 greedy, median of {repeats}: raw llama-cpp-python {r:.1f} tok/s, "
        f"batched engine {o:.1f} tok/s, ratio {o / r:.3f} (goal >= 0.97)"
    )


async def _pair(
    sequential: LocalClient, batched: LocalClient, model: str, n: int, tokens: int
) -> tuple[float, float]:
    seq_s, seq = await _sample(sequential, model, n, tokens, 0.8)
    bat_s, bat = await _sample(batched, model, n, tokens, 0.8)
    _check_length(f"n={n} sequential", seq, tokens)
    _check_length(f"n={n} batched", bat, tokens)
    seq_rate = seq.usage.completion_tokens / seq_s
    bat_rate = bat.usage.completion_tokens / bat_s
    same = sum(a.text == b.text for a, b in zip(seq.completions, bat.completions, strict=True))
    print(
        f"n={n}: sequential {seq_s:.1f} s ({seq_rate:.1f} tok/s), batched {bat_s:.1f} s "
        f"({bat_rate:.1f} tok/s aggregate), wall ratio {bat_s / seq_s:.2f}"
        f" [{same}/{n} texts identical]"
    )
    return seq_s, bat_s


async def main(args: argparse.Namespace) -> int:
    path = _model_file(args.model)
    if path is None:
        print(f"{args.model} is not installed: python -m archon models pull {args.model}")
        return 1
    model = f"local/{args.model}"
    threads = available_threads()
    sequential = LocalClient(paths={args.model: path}, n_threads=threads, batched=False)
    batched = LocalClient(paths={args.model: path}, n_threads=threads)
    print(f"model {args.model} ({path.name}), {threads} threads, {args.tokens} tokens/sample")
    try:
        for client in (sequential, batched):  # load and warm up outside the timing
            await _sample(client, model, 1, 8, 0.8)
        await _raw_vs_batched(path, batched, model, args.tokens, args.repeats)
        for n in args.ns:
            await _pair(sequential, batched, model, n, args.tokens)
        ratios = []
        for _ in range(args.repeats):
            seq_s, bat_s = await _pair(sequential, batched, model, 5, args.tokens)
            ratios.append(bat_s / seq_s)
    finally:
        await sequential.aclose()
        await batched.aclose()
    print(f"n=5 batched/sequential wall ratio: {statistics.median(ratios):.2f}")
    return 0


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default=os.environ.get("BENCH_MODEL", "qwen2.5-coder-0.5b"))
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument(
        "--ns", type=lambda s: [int(x) for x in s.split(",") if x], default=[1, 2, 4, 8]
    )
    parser.add_argument("--repeats", type=int, default=2, help="runs of n=1 and n=5 (median)")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(_parse())))
