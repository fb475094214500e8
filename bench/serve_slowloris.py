"""Slow-loris connections against ``archon serve`` under ``ulimit -n 1024``.

    python bench/serve_slowloris.py [--connections 1100] [--duration 20] [--fd-limit 1024]

``python -m archon serve`` runs in a child process under ``ulimit -n FD_LIMIT``, its stdout
and stderr going to a log file; a loopback fake OpenAI-compatible server (that of
``bench/concurrency.py``, no latency) answers its model calls, so no model is loaded. This
process then holds ``--connections`` slow-loris connections open (partial request headers,
one more byte every few seconds, never finished; one the server closes is opened again a
second later), and while they are open a real client sends a chat completion every 0.5 s
on a fresh connection for ``--duration`` seconds.

Printed: the slow-loris connections attempted, accepted (held open over a second) and
refused by the server (closed within a second of opening: refused at the cap, or closed to
make room for a newer one) and closed later; the real requests answered,
their max and median latency; the size of the server's log. Checks (exit status 1 when one
fails): every real request answered 200 within 2 s, and under 1 MB of log.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from concurrency import _free_port, _serve

ROOT = Path(__file__).resolve().parents[1]
PIPE = """
models {{ m = model("openai/fake", api_base = "http://127.0.0.1:{port}/v1") }}
pipeline bench {{ generate(models = [m], max_tokens = 16) }}
"""
KEY = "slowloris-bench-key"
LATENCY_GOAL_S = 2.0
LOG_GOAL_BYTES = 1_000_000
REFUSED_WITHIN_S = 1.0


@dataclass
class Loris:
    """Counts of the slow-loris side."""

    attempted: int = 0
    connect_failed: int = 0
    accepted: int = 0  # held open for more than REFUSED_WITHIN_S
    refused: int = 0  # closed by the server within REFUSED_WITHIN_S (refused or made room)
    expired: int = 0  # closed by the server later (header deadline, or made room)
    open_now: int = 0
    open_max: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def _raise_fd_limit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed + 256)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < needed + 64:
        print(
            f"warning: this process may hold only {soft} file descriptors (hard limit {hard});"
            f" {needed} slow-loris connections need about {needed + 64}",
            file=sys.stderr,
        )
    return int(soft)


def _start_server(
    pipe: Path, log: Path, fd_limit: int, header_timeout: float
) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    command = (
        f"ulimit -n {fd_limit} && exec {sys.executable} -m archon serve {pipe} --port {port}"
        f" --no-cache --api-key-env SLOWLORIS_KEY --header-timeout {header_timeout}"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLOWLORIS_KEY": KEY}
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", command], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("archon serve exited before listening:\n" + log.read_text()[-3000:])
        if re.search(r"listening on (\S+)", log.read_text(errors="replace")):
            return process, port
        time.sleep(0.2)
    process.kill()
    raise SystemExit("archon serve did not start listening within 120 s")


async def _loris(port: int, stats: Loris, stop: asyncio.Event, drip_s: float) -> None:
    """One slow-loris connection, opened again a second after the server closes it."""
    while not stop.is_set():
        stats.attempted += 1
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        except (OSError, TimeoutError) as error:
            stats.connect_failed += 1
            name = type(error).__name__
            stats.errors[name] = stats.errors.get(name, 0) + 1
            await asyncio.sleep(1.0)
            continue
        opened = time.monotonic()
        stats.open_now += 1
        stats.open_max = max(stats.open_max, stats.open_now)
        counted = False
        try:
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-a: ")
            closed = asyncio.ensure_future(reader.read(1))
            while not stop.is_set():
                done, _ = await asyncio.wait({closed}, timeout=drip_s)
                if not counted and time.monotonic() - opened > REFUSED_WITHIN_S:
                    stats.accepted += 1
                    counted = True
                if done:
                    break
                writer.write(b"a")  # one more byte of a header that never ends
            if closed.done():
                closed.exception()  # a reset is a close too
                if time.monotonic() - opened <= REFUSED_WITHIN_S:
                    stats.refused += 1
                else:
                    stats.expired += 1
            else:
                closed.cancel()
        except OSError:
            stats.refused += 1
        finally:
            stats.open_now -= 1
            writer.close()
        if not stop.is_set():
            await asyncio.sleep(1.0)


async def _real_client(port: int, duration: float) -> list[tuple[float, int | str]]:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    body = {"model": "bench", "messages": [{"role": "user", "content": "hello"}]}
    headers = {"Authorization": f"Bearer {KEY}"}
    results: list[tuple[float, int | str]] = []

    async def one() -> None:
        started = time.perf_counter()
        status: int | str
        try:
            connector = aiohttp.TCPConnector(force_close=True)
            timeout = aiohttp.ClientTimeout(total=10)
            async with (
                aiohttp.ClientSession(connector=connector) as session,
                session.post(url, json=body, headers=headers, timeout=timeout) as reply,
            ):
                await reply.read()
                status = reply.status
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            status = type(error).__name__
        results.append((time.perf_counter() - started, status))

    tasks = []
    end = time.monotonic() + duration
    while time.monotonic() < end:
        tasks.append(asyncio.ensure_future(one()))
        await asyncio.sleep(0.5)
    await asyncio.gather(*tasks)
    return results


async def _attack(
    port: int, connections: int, duration: float, drip_s: float
) -> tuple[Loris, list[tuple[float, int | str]]]:
    stats = Loris()
    stop = asyncio.Event()
    lorises = []
    for i in range(connections):
        lorises.append(asyncio.ensure_future(_loris(port, stats, stop, drip_s)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)
    await asyncio.sleep(2.0)  # let them all connect
    print(f"slow-loris connections open before the real client starts: {stats.open_now}")
    results = await _real_client(port, duration)
    stop.set()
    await asyncio.gather(*lorises, return_exceptions=True)
    return stats, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1100)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--fd-limit", type=int, default=1024)
    parser.add_argument("--drip", type=float, default=3.0, help="seconds between bytes")
    parser.add_argument("--header-timeout", type=float, default=10.0)
    args = parser.parse_args()
    soft = _raise_fd_limit(args.connections + 100)
    fake_port = _free_port()
    fake = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(fake_port, 0.0), daemon=True
    )
    fake.start()
    with tempfile.TemporaryDirectory() as tmp:
        pipe = Path(tmp) / "bench.pipe"
        pipe.write_text(PIPE.format(port=fake_port))
        log = Path(tmp) / "serve.log"
        server, port = _start_server(pipe, log, args.fd_limit, args.header_timeout)
        try:
            stats, results = asyncio.run(_attack(port, args.connections, args.duration, args.drip))
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            fake.terminate()
        log_bytes = log.stat().st_size
        log_tail = log.read_text(errors="replace")[-3000:]

    latencies = [t for t, _ in results]
    answered = [t for t, status in results if status == 200]
    statuses: dict[str, int] = {}
    for _, status in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    in_time = len(answered) == len(results) > 0 and max(answered) < LATENCY_GOAL_S
    small_log = log_bytes < LOG_GOAL_BYTES
    print(f"bench fd soft limit: {soft}; server: ulimit -n {args.fd_limit}")
    print(
        f"slow-loris: attempted {stats.attempted}, accepted (open > {REFUSED_WITHIN_S:g} s)"
        f" {stats.accepted}, refused by the server (closed within {REFUSED_WITHIN_S:g} s)"
        f" {stats.refused}, closed later (header deadline or room for a newer one)"
        f" {stats.expired}, connect failed {stats.connect_failed} {stats.errors or ''},"
        f" open at most {stats.open_max} (client side, the kernel backlog included)"
    )
    print(f"real client: {len(answered)}/{len(results)} answered 200; statuses {statuses}")
    if latencies:
        print(
            f"real client latency: max {max(latencies):.3f} s,"
            f" p50 {statistics.median(latencies):.3f} s"
        )
    print(f"all answered within {LATENCY_GOAL_S:g} s: {'yes' if in_time else 'NO'}")
    print(f"server log: {log_bytes} bytes; under 1 MB: {'yes' if small_log else 'NO'}")
    print("server log, last lines:")
    for line in log_tail.splitlines()[-6:]:
        print("    " + line[:200])
    return 0 if in_time and small_log else 1


if __name__ == "__main__":
    sys.exit(main())
