"""Parse + compile time of generated pipelines of 1,000 and 10,000 nodes.

Run: ``python bench/compile_bench.py`` (options: ``--sizes 1000 10000 --repeat 3``).
Prints, per size, the best-of-N wall time of parse and of compile, the time per node, and the
ratio of per-node time between the largest and smallest size (1.0 = perfectly linear).
Goal: under 1 s for 1,000 nodes, and linear growth.
"""

from __future__ import annotations

import argparse
import gc
import time

from archon.compiler import compile_program
from archon.compiler.load import load_source
from archon.layers import default_registry
from archon.source import SourceFile


def generated_pipeline(nodes: int) -> str:
    """A pipeline of ``nodes`` layers: a generate, then rank/critique/fuse/verify in turn,
    with a labelled DAG edge every 50 nodes so explicit inputs are exercised too."""
    lines = [
        'models { m = "local/qwen2.5-coder-0.5b" }',
        "pipeline big {",
        "  start = generate(models = [m], samples = 3, temperature = 0.7)",
    ]
    cycle = [
        "critique(model = m)",
        "rank(model = m, top_k = 2)",
        "fuse(models = [m], max_tokens = 256)",
        "verify(model = m, threshold = 0.5)",
    ]
    for index in range(1, nodes):
        layer = cycle[index % len(cycle)]
        if index % 50 == 0:
            previous = f", n{index - 50}" if index > 50 else ""
            lines.append(f"  n{index} = fuse(models = [m]) <- start{previous}")
        else:
            lines.append(f"  n{index} = {layer}")
    lines.append("}")
    return "\n".join(lines)


def best_of(repeat: int, action) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        gc.collect()  # start each run from the same heap state
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def measure(size: int, repeat: int) -> tuple[float, float]:
    """Best-of-``repeat`` seconds to parse and to compile a generated pipeline of ``size``."""
    registry = default_registry()
    source = SourceFile("big.pipe", generated_pipeline(size))
    parse_time = best_of(repeat, lambda: load_source(source))
    program = load_source(source)

    def compile_once() -> None:
        result = compile_program(program, registry)
        assert result.pipeline is not None and len(result.pipeline.nodes) == size, result.errors

    return parse_time, best_of(repeat, compile_once)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    load_source(SourceFile("warm.pipe", generated_pipeline(10)))  # build the parser once
    per_node = {}
    print(f"{'nodes':>8} {'parse s':>9} {'compile s':>10} {'total s':>9} {'µs/node':>9}")
    for size in args.sizes:
        parse_time, compile_time = measure(size, args.repeat)
        total = parse_time + compile_time
        per_node[size] = total / size
        row = f"{size:>8} {parse_time:>9.3f} {compile_time:>10.3f} {total:>9.3f}"
        print(f"{row} {per_node[size] * 1e6:>9.1f}")
    small, large = min(per_node), max(per_node)
    if small != large:
        ratio = per_node[large] / per_node[small]
        print(f"per-node time ratio {large}/{small} nodes: {ratio:.2f} (1.0 = linear)")


if __name__ == "__main__":
    main()
