"""Wall time of the code sandbox per run, in each isolation mode available here.

    python bench/sandbox_latency.py [--repeat 15]

Times ``run_tests`` with 5 tests, ``run_calls`` with 1 and 10 calls, and ``run_stdio`` with
10 inputs, for a trivial ``add`` program (so the figures are the sandbox's own cost: two
sandboxed processes for tests, one for calls and runs, plus one fork per test call, call or
run). Prints the median and the best of ``--repeat`` runs, and the cost of one more call.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from archon.sandbox import Sandbox, isolation

CODE = (
    "import sys\ndef add(a, b):\n    return a + b\n"
    "if __name__ == '__main__':\n    print(add(*map(int, sys.stdin.read().split())))\n"
)
TESTS = [f"assert add({i}, 1) == {i + 1}" for i in range(5)]
CALLS = [f"add({i}, 2)" for i in range(10)]
INPUTS = [f"{i} 3" for i in range(10)]


async def _time(work: Callable[[], Awaitable[object]], repeat: int) -> list[float]:
    await work()  # warm: the first run also probes the machine
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await work()
        times.append(time.perf_counter() - started)
    return times


async def _bench(mode: str, repeat: int) -> None:
    box = Sandbox(isolation=mode)  # type: ignore[arg-type]
    cases: dict[str, Callable[[], Awaitable[object]]] = {
        "run_tests, 5 tests": lambda: box.run_tests(CODE, TESTS),
        "run_calls, 1 call": lambda: box.run_calls(CODE, CALLS[:1]),
        "run_calls, 10 calls": lambda: box.run_calls(CODE, CALLS),
        "run_stdio, 10 inputs": lambda: box.run_stdio(CODE, INPUTS),
    }
    medians = {}
    for name, work in cases.items():
        times = await _time(work, repeat)
        medians[name] = statistics.median(times)
        print(f"{mode:10s} {name:22s} median {medians[name] * 1000:7.1f} ms"
              f"   best {min(times) * 1000:7.1f} ms")  # fmt: skip
    extra = (medians["run_calls, 10 calls"] - medians["run_calls, 1 call"]) / 9
    print(f"{mode:10s} one more call           {extra * 1000:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    modes = ["namespace", "audit-hook"] if isolation() == "namespace" else ["audit-hook"]
    for mode in modes:
        asyncio.run(_bench(mode, args.repeat))


if __name__ == "__main__":
    main()
