"""A search worker run in a subprocess by the resume and multi-worker tests.

Usage: python worker_script.py STORAGE STUDY TRIALS LATENCY_S [SEED]
"""

from __future__ import annotations

import asyncio
import sys

from archon.compiler import compile_source
from archon.layers import default_registry
from archon.runtime import Limits
from archon.search import SearchBudget, SearchOptions, search_async
from archon.search.objective import RuntimeEvaluator
from archon.search.simulator import arithmetic_items, last_number_matches, simulated_client

TEMPLATE = """
models { a = "sim/a" }
pipeline worker {
  generate(models = [a], samples = int(1, 4), temperature = float(0.0, 1.0), max_tokens = 32)
}
"""


def main() -> None:
    storage, study, trials, latency = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    seed = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    registry = default_registry()
    template = compile_source(TEMPLATE, registry=registry)
    client = simulated_client(
        lambda request: 0.3 + 0.5 * (request.temperature or 0.0) / 1.0, latency_s=latency
    )
    evaluator = RuntimeEvaluator(
        client, last_number_matches, lambda item: item.query, limits=Limits(), registry=registry
    )
    items = arithmetic_items(8, seed=3)
    result = asyncio.run(
        search_async(
            template,
            items[:6],
            items[6:],
            evaluator=evaluator,
            registry=registry,
            storage=storage,
            study_name=study,
            options=SearchOptions(seed=seed, pruner="none", heartbeat_s=0.5, stale_after_s=30),
            budget=SearchBudget(trials=trials),
        )
    )
    print(f"new={result.new_trials} stopped={result.stopped} recovered={list(result.recovered)}")


if __name__ == "__main__":
    main()
