"""Throughput of ``archon serve`` against calling ``run_many`` directly, in one run.

    python bench/serve.py [--queries 50] [--latency 0.2] [--rounds 3] [--concurrency 64]

The loopback fake OpenAI-compatible server of ``bench/concurrency.py`` (child process, fixed
latency) answers every model call. The same queries go through generate(5 samples) -> fuse
(6 calls each, the lean ``OpenAICompatClient`` path) twice per round:

* direct: ``run_many`` in this process, one ``Limits(max_concurrency=C)``;
* served: ``python -m archon serve`` in a child process with ``--model-concurrency C``, all
  queries sent at once as chat completions by a small aiohttp load generator.

Reported (median over the rounds): throughput of each (queries/s), the ratio served/direct
(goal >= 0.9) and the latency each request gains by going through the server.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from concurrency import _free_port, _serve

from archon.compiler import compile_source
from archon.compiler.structure import assign
from archon.ir import Pipeline
from archon.layers import default_registry
from archon.runtime import Limits, run_many
from archon.runtime.clients.router import RouterClient

ROOT = Path(__file__).resolve().parents[1]
PIPE = """
models {{ m = model("openai/fake", api_base = "http://127.0.0.1:{port}/v1") }}
pipeline bench {{
  generate(models = [m], samples = 5, temperature = 0.7, max_tokens = 16)
  fuse(models = [m], max_tokens = 16)
}}
"""


def _wait_port(port: int) -> None:
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


@dataclass(frozen=True)
class Timings:
    """One round: wall time of all queries at once, their latencies, and the latencies of
    queries sent one at a time."""

    wall: float
    latencies: list[float]
    alone: list[float]
    cpu: float  # CPU seconds of the process running the pipelines, during the timed run


async def _direct(
    pipeline: Pipeline, queries: list[str], concurrency: int, sequential: int
) -> Timings:
    registry = default_registry()
    client = RouterClient.for_pipeline(pipeline)
    limits = Limits(max_concurrency=concurrency)
    options = {"client": client, "registry": registry, "limits": limits}
    async for _ in run_many(pipeline, [f"warm {i}" for i in range(13)], **options):  # type: ignore[arg-type]
        pass
    latencies: list[float] = []
    cpu, start = time.process_time(), time.perf_counter()
    async for item in run_many(pipeline, queries, max_in_flight=len(queries), **options):  # type: ignore[arg-type]
        assert item.result is not None, item.error
        latencies.append(item.result.seconds)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    alone = []
    for i in range(sequential):  # one at a time: the latency without contention
        started = time.perf_counter()
        async for _ in run_many(pipeline, [f"alone {i}"], **options):  # type: ignore[arg-type]
            pass
        alone.append(time.perf_counter() - started)
    await client.aclose()
    return Timings(wall, latencies, alone, cpu)


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _served(url: str, queries: list[str], sequential: int, pid: int) -> Timings:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def ask(text: str) -> float:
            body = {"model": "bench", "messages": [{"role": "user", "content": text}]}
            started = time.perf_counter()
            async with http.post(url + "/chat/completions", json=body) as reply:
                assert reply.status == 200, await reply.text()
                await reply.read()
            return time.perf_counter() - started

        await asyncio.gather(*(ask(f"warm {i}") for i in range(13)))
        cpu, start = _cpu_of(pid), time.perf_counter()
        latencies = await asyncio.gather(*(ask(q) for q in queries))
        wall, cpu = time.perf_counter() - start, _cpu_of(pid) - cpu
        alone = [await ask(f"alone {i}") for i in range(sequential)]
        return Timings(wall, list(latencies), alone, cpu)


def _start_server(pipe: Path, concurrency: int) -> tuple[asyncio.subprocess.Process, str]:
    async def start() -> tuple[asyncio.subprocess.Process, str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "archon",
            "serve",
            str(pipe),
            "--port",
            "0",
            "--no-cache",
            "--model-concurrency",
            str(concurrency),
            "--max-concurrency",
            "256",
            cwd=ROOT,
            env=env,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        while True:
            line = (await process.stderr.readline()).decode()
            if not line:
                raise SystemExit("archon serve exited before listening")
            found = re.search(r"listening on (\S+)", line)
            if found:
                return process, found.group(1)

    return asyncio.run(start())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--sequential", type=int, default=10)
    args = parser.parse_args()
    port = _free_port()
    fake = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(port, args.latency), daemon=True
    )
    fake.start()
    _wait_port(port)
    registry = default_registry()
    text = PIPE.format(port=port)
    pipeline = assign(compile_source(text, "bench.pipe", registry), None, registry)[0]
    queries = [f"question {i}" for i in range(args.queries)]
    with tempfile.TemporaryDirectory() as tmp:
        pipe = Path(tmp) / "bench.pipe"
        pipe.write_text(text)
        server, url = _start_server(pipe, args.concurrency)
        direct: list[Timings] = []
        served: list[Timings] = []
        try:
            for _ in range(args.rounds):  # interleaved, so load drift hits both
                run = _direct(pipeline, queries, args.concurrency, args.sequential)
                direct.append(asyncio.run(run))
                served.append(asyncio.run(_served(url, queries, args.sequential, server.pid)))
        finally:
            server.terminate()
            fake.terminate()
    _report(args, direct, served)


def _report(args: argparse.Namespace, direct: list[Timings], served: list[Timings]) -> None:
    n = args.queries

    def median(rounds: list[Timings], pick: str) -> float:
        values = [getattr(r, pick) for r in rounds]
        return statistics.median(v if isinstance(v, float) else statistics.mean(v) for v in values)

    wall_d, wall_s = median(direct, "wall"), median(served, "wall")
    lat_d, lat_s = median(direct, "latencies"), median(served, "latencies")
    alone_d, alone_s = median(direct, "alone"), median(served, "alone")
    cpu_d, cpu_s = median(direct, "cpu"), median(served, "cpu")
    ratios = [d.wall / s.wall for d, s in zip(direct, served, strict=True)]
    print(
        f"{n} queries x generate(5) -> fuse = {n * 6} calls, latency"
        f" {args.latency * 1000:.0f} ms, model concurrency {args.concurrency},"
        f" {args.rounds} rounds (median), load average {os.getloadavg()[0]:.1f}"
    )
    for label, wall, lat, alone, cpu in (
        ("direct (run_many)", wall_d, lat_d, alone_d, cpu_d),
        ("archon serve", wall_s, lat_s, alone_s, cpu_s),
    ):
        print(
            f"  {label:<18} wall {wall:.2f}s, {n / wall:.1f} queries/s, mean latency"
            f" {lat * 1000:.0f} ms under load, {alone * 1000:.1f} ms alone,"
            f" CPU {cpu / n * 1000:.2f} ms/query"
        )
    print(
        f"  throughput serve/direct: {wall_d / wall_s:.2f} (goal >= 0.90; per round"
        f" {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    print(
        f"  added latency per request: {(alone_s - alone_d) * 1000:.1f} ms alone,"
        f" {(lat_s - lat_d) * 1000:.1f} ms under load;"
        f" added server CPU {(cpu_s - cpu_d) / n * 1000:.2f} ms/query"
    )


if __name__ == "__main__":
    main()
