"""Start-up time of the commands an editor or a pre-commit hook runs often.

    python bench/cli_startup.py [--repeat 10] [--root DIR]

Runs ``python -m archon check examples/baseline.pipe``, ``python -m archon check
examples/code_best.pipe`` (more layer kinds) and ``python -m archon fmt
examples/baseline.pipe`` ``--repeat`` times each in fresh processes (after one warm-up run
that fills the bytecode and grammar caches) and prints, per command, the median and best wall
time and the median CPU time (user + system of the child), next to ``python -c pass`` for
scale: on a busy machine the CPU column is the steadier one. ``--root`` runs another checkout.
Goal: each under 0.3 s. Bytecode goes to a private prefix, so the figures hold even where
``PYTHONDONTWRITEBYTECODE`` is set.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "python": ["-c", "pass"],  # the interpreter alone: the floor on this machine now
    "check": ["-m", "archon", "check", "examples/baseline.pipe"],
    # five layer kinds, query_tests among them: kinds are imported on first use
    "check-code": ["-m", "archon", "check", "examples/code_best.pipe"],
    "fmt": ["-m", "archon", "fmt", "examples/baseline.pipe"],
}


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(root: Path, args: list[str], repeat: int, env: dict[str, str]) -> tuple[float, ...]:
    """Median wall, best wall and median CPU seconds of ``python ARGS``."""
    command = [sys.executable, *args]
    subprocess.run(command, cwd=root, env=env, check=True, capture_output=True)  # warm-up
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(repeat):
        cpu = _child_cpu()
        start = time.perf_counter()
        subprocess.run(command, cwd=root, env=env, check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
        cpus.append(_child_cpu() - cpu)
    return statistics.median(walls), min(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as prefix:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env |= {"PYTHONPYCACHEPREFIX": prefix, "PYTHONPATH": str(options.root)}
        print(f"{'command':<10} {'median':>8} {'best':>8} {'cpu':>8}")
        for name, args in COMMANDS.items():
            median, best, cpu = measure(options.root, args, options.repeat, env)
            print(f"{name:<10} {median:>7.3f}s {best:>7.3f}s {cpu:>7.3f}s")


if __name__ == "__main__":
    main()
