"""Search efficiency: trials to reach 95 % of the optimum (simulator), and a real local search.

Two parts:

``simulate`` (default): on a seeded synthetic landscape over a realistic, finite search space
(samples, temperature, verify on/off, 0-2 fusion layers with their temperatures, rank on/off
before a vote), count the trials each sampler (TPE, random, grid) needs until a configuration
scores at least 95 % of the optimum, over many seeds. The objective is analytic (no model,
no noise), so the numbers measure the samplers only. Goal: TPE needs at most a third of the
trials random search needs.

``real``: a real search with the embedded local model (Qwen2.5-Coder-0.5B, CPU) on BIG-bench
arithmetic -- samples in {1, 3, 5}, verify on/off, 0-2 fuse layers, rank-then-vote vs vote --
under a calls budget, reporting the baseline (the template's defaults) against the best
configuration on the held-out test split.

Usage::

    python bench/search_efficiency.py simulate --seeds 20 --max-trials 300
    python bench/search_efficiency.py real --dev 30 --test 30 --trials 12 --budget-calls 1500
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path

from archon.compiler import compile_source
from archon.compiler.structure import space_size
from archon.eval.datasets import load_dataset
from archon.eval.splits import select_split
from archon.ir import Pipeline
from archon.layers import default_registry
from archon.layers.registry import Registry
from archon.runtime.home import archon_home
from archon.search import SearchBudget, SearchOptions, SearchResult, search_async
from archon.search.simulator import Landscape, SimulatedEvaluator

SPACE = """
models { m = "local/qwen2.5-coder-0.5b" }
pipeline arith {
  budget { calls <= 16 }
  generate(models = [m], samples = int(1, 5, step = 2),
           temperature = float(0.0, 1.0, step = 0.1), max_tokens = 64)
  optional verify(model = m)
  repeat int(0, 2) { fuse(models = [m], temperature = float(0.0, 0.6, step = 0.2)) }
  optional rank(model = m, top_k = 1)
  vote(extract = "number")
}
"""

REAL = """
models { m = "local/qwen2.5-coder-0.5b" }
pipeline arith_real {
  budget { calls <= 16 }
  generate(models = [m], samples = choice(1, 3, 5), temperature = 0.7, max_tokens = 64,
           system_prompt = "Solve the arithmetic problem. End with: Answer: <number>")
  optional verify(model = m, max_tokens = 64)
  repeat int(0, 2) { fuse(models = [m], max_tokens = 64) }
  optional rank(model = m, top_k = 1, max_tokens = 64)
  vote(extract = "number")
}
"""

TARGET = 0.95
SHARPNESS = 1.0  # quality = 0.1 + 0.9 * closeness: 95 % of the optimum needs closeness >= 0.944


# --- simulator ------------------------------------------------------------------------------


def trials_to_target(result: SearchResult, target: float) -> int | None:
    """1-based count of trials until one reached ``target`` (None: never)."""
    for position, trial in enumerate(sorted(result.report.trials, key=lambda t: t.number), 1):
        if trial.quality is not None and trial.quality >= target:
            return position
    return None


async def one_run(
    template: Pipeline, registry: Registry, sampler: str, seed: int, max_trials: int
) -> int | None:
    landscape = Landscape.random(template, seed, sharpness=SHARPNESS)
    evaluator = SimulatedEvaluator(landscape.quality, registry, noise=False)
    item = [object()]
    result = await search_async(
        template,
        item,
        [],
        evaluator=evaluator,
        registry=registry,
        options=SearchOptions(
            sampler=sampler,  # type: ignore[arg-type]
            seed=seed,
            pruner="none",
            winner="best",  # the sampler is measured, not the winner rule
        ),
        budget=SearchBudget(trials=max_trials),
    )
    return trials_to_target(result, TARGET * landscape.optimum())


def summarize(name: str, counts: list[int | None], cap: int) -> dict[str, object]:
    reached = [c for c in counts if c is not None]
    censored = [c if c is not None else cap for c in counts]  # a miss counts as the cap
    return {
        "sampler": name,
        "reached": f"{len(reached)}/{len(counts)}",
        "median": statistics.median(censored),
        "mean": statistics.mean(censored),
    }


def simulate(seeds: int, max_trials: int, samplers: list[str]) -> str:
    registry = default_registry()
    template = compile_source(SPACE, registry=registry)
    rows = []
    started = time.perf_counter()
    for sampler in samplers:
        counts = [
            asyncio.run(one_run(template, registry, sampler, seed, max_trials))
            for seed in range(seeds)
        ]
        rows.append(summarize(sampler, counts, max_trials))
        logging.info("%s: %s", sampler, counts)
    by_name = {str(r["sampler"]): r for r in rows}
    lines = [
        f"search space: {int(space_size(template))} hole assignments"
        f" ({len(template.nodes)} nodes before switches); target {TARGET:.0%} of the optimum;"
        f" {seeds} seeds; at most {max_trials} trials per run (a miss counts as {max_trials})",
        "",
        "| sampler | reached | median trials | mean trials |",
        "|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['sampler']} | {row['reached']} | {row['median']:.0f} | {row['mean']:.1f} |"
        )
    if "tpe" in by_name and "random" in by_name:
        ratio = float(by_name["tpe"]["mean"]) / float(by_name["random"]["mean"])  # type: ignore[arg-type]
        lines += ["", f"TPE / random (mean trials): {ratio:.2f} (goal: <= 0.33)"]
    lines.append(f"wall time: {time.perf_counter() - started:.0f}s")
    return "\n".join(lines)


# --- real local search ----------------------------------------------------------------------


def real(dev: int, test: int, trials: int, budget_calls: int, seed: int, storage: str) -> str:
    from archon.eval import EvalConfig
    from archon.runtime import CallCache, Limits
    from archon.runtime.clients.local import models as local_models
    from archon.runtime.clients.router import RouterClient
    from archon.search.objective import EvalEvaluator

    registry = default_registry()
    template = compile_source(REAL, registry=registry)
    dataset = load_dataset("bigbench/arithmetic")
    dev_items = select_split(dataset, "dev").items[:dev]
    test_items = select_split(dataset, "test").items[:test]
    home = archon_home()
    cache = CallCache(home / "cache.sqlite")

    async def go() -> SearchResult:
        client = RouterClient.for_pipeline(
            template, local_resolve=lambda name: local_models.ensure(name, home)
        )
        config = EvalConfig.of(
            client=client, limits=Limits(), cache=cache, registry=registry, seed=seed
        )
        evaluator = EvalEvaluator(dataset, config)
        try:
            return await search_async(
                template,
                dev_items,
                test_items,
                evaluator=evaluator,
                registry=registry,
                storage=storage,
                study_name="arith_real",
                options=SearchOptions(seed=seed, test_top=1, test_reserve=0.3),
                budget=SearchBudget(trials=trials, calls=budget_calls),
            )
        finally:
            await client.aclose()

    started = time.perf_counter()
    result = asyncio.run(go())
    cache.close()
    base, best = result.baseline, result.best[0] if result.best else None
    lines = [
        f"BIG-bench arithmetic, local qwen2.5-coder-0.5b (CPU), {len(dev_items)} dev +"
        f" {len(test_items)} test items, {trials} trials, calls budget {budget_calls}",
        "",
        "| configuration | dev | test | est. calls/query | params |",
        "|---|---|---|---|---|",
    ]
    for label, trial in (("baseline (defaults)", base), ("best", best)):
        if trial is None:
            continue
        lines.append(
            f"| {label} (trial {trial.number}) | {_f(trial.quality)} | {_f(trial.test_score)} |"
            f" {trial.estimated_calls} | {dict(trial.params)} |"
        )
    counts = result.report.counts()
    lines += [
        "",
        f"trials: {counts}; stopped: {result.stopped}; spent {result.spent.calls} calls"
        f" (cache answered {result.cache_hits}); wall time {time.perf_counter() - started:.0f}s",
    ]
    return "\n".join(lines)


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode")
    sim = sub.add_parser("simulate", help="samplers on the synthetic landscape")
    sim.add_argument("--seeds", type=int, default=20)
    sim.add_argument("--max-trials", type=int, default=400)
    sim.add_argument("--samplers", default="tpe,random,grid")
    live = sub.add_parser("real", help="a real search with the local model")
    live.add_argument("--dev", type=int, default=30)
    live.add_argument("--test", type=int, default=30)
    live.add_argument("--trials", type=int, default=12)
    live.add_argument("--budget-calls", type=int, default=1500)
    live.add_argument("--seed", type=int, default=0)
    live.add_argument("--storage", default=None, help="study storage URL (default: in memory)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(message)s")
    logging.getLogger("optuna").setLevel(logging.WARNING)
    warnings.simplefilter("ignore")
    if args.mode == "real":
        print(real(args.dev, args.test, args.trials, args.budget_calls, args.seed, args.storage))
    else:
        seeds = getattr(args, "seeds", 20)
        cap = getattr(args, "max_trials", 400)
        samplers = getattr(args, "samplers", "tpe,random,grid").split(",")
        print(simulate(seeds, cap, samplers))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
