"""Templates and helpers shared by the search tests."""

from __future__ import annotations

import asyncio
from typing import Any

from archon.compiler import compile_source
from archon.eval.items import EvalItem
from archon.ir import Pipeline
from archon.layers.registry import Registry
from archon.runtime import Limits
from archon.runtime.clients.fake import ScriptedClient
from archon.search import SearchBudget, SearchOptions, SearchResult, search_async
from archon.search.objective import RuntimeEvaluator
from archon.search.simulator import arithmetic_items, last_number_matches, simulated_client

# Every kind of hole: list-valued choice, stepped and log ranges, optional layer, repeat
# block whose copies have their own holes.
FULL = """
models { a = "sim/a"  b = "sim/b" }
pipeline full {
  budget { calls <= 40 }
  gen = generate(models = choice([a], [a, b]), samples = int(1, 4), temperature = float(0.0, 1.0))
  optional critique(model = choice("sim/a", "sim/b"))
  rank(model = a, top_k = int(1, 3))
  repeat int(0, 2) { fuse(models = [a], temperature = float(0.0, 0.6, step = 0.2)) }
}
"""

# A small, fully discrete space (2 * 3 * 2 = 12 configurations, 10 distinct: repeat 0 hides
# the copy's temperature).
DISCRETE = """
models { a = "sim/a" }
pipeline discrete {
  generate(models = choice([a], [a, a]), samples = int(1, 3))
  repeat int(0, 1) { fuse(models = [a], temperature = float(0.0, 0.5, step = 0.5)) }
}
"""

# Runs with the runtime's generate layer only: calls per query = samples.
GENERATE = """
models { a = "sim/a" }
pipeline gen {
  generate(models = [a], samples = int(1, 4), temperature = float(0.0, 1.0), max_tokens = 32)
}
"""


def compile_text(text: str, registry: Registry) -> Pipeline:
    return compile_source(text, registry=registry)


def run_search(
    template: Pipeline,
    evaluator: Any,
    registry: Registry,
    *,
    dev: int = 9,
    test: int = 6,
    storage: str | None = None,
    study: str | None = None,
    options: SearchOptions | None = None,
    budget: SearchBudget | None = None,
    on_event: Any = None,
) -> SearchResult:
    """One search worker over simulated arithmetic items."""
    items = arithmetic_items(dev + test, seed=7)
    return asyncio.run(
        search_async(
            template,
            items[:dev],
            items[dev:],
            evaluator=evaluator,
            registry=registry,
            storage=storage,
            study_name=study,
            options=options,
            budget=budget,
            on_event=on_event,
        )
    )


def sim_runtime(
    registry: Registry, accuracy: float = 0.6, latency_s: float = 0.0, **options: Any
) -> tuple[RuntimeEvaluator[EvalItem], ScriptedClient]:
    """A runtime evaluator over a simulated client answering correctly with ``accuracy``."""
    client = simulated_client(lambda request: accuracy, latency_s=latency_s)
    evaluator = RuntimeEvaluator(
        client,
        last_number_matches,
        lambda item: item.query,
        limits=Limits(),
        registry=registry,
        **options,
    )
    return evaluator, client
