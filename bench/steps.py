"""Step-level search benchmark: best-of-N + vote vs beam search vs particle filtering.

At equal model calls per query (``--budgets``, default 8 and 16), on the committed BIG-bench
arithmetic items and the MATH-style sample, with the embedded local model:

* ``bon_vote``  ``generate(samples = B)`` then ``vote``: B whole answers;
* ``beam``      ``beam_search`` then ``vote``: ``--rounds`` steps of ``B / rounds`` expansions
                (``beam_width × expansions``; 1 × 2 at B = 8, 2 × 2 at B = 16 with 4 rounds);
* ``particle``  ``particle_filter`` then ``vote``: ``B / rounds`` particles for ``--rounds``
                steps.

The searches score steps with ``--scorer`` (``logprob``: no extra call, so calls = expansions;
``self_eval``: one judge call per expansion plus a probe, so the widths are halved to stay
within B). Every answer may use ``rounds × step_tokens`` tokens, so best-of-N gets the same
length bound. Each point reports accuracy, calls, tokens and wall time per query, and each
budget which configuration wins.

    python bench/steps.py --items 2 --model local/smollm2-135m     # smoke test, a few minutes
    python bench/steps.py --items 20 --out bench/results/steps.md  # hours on 2 CPU cores

The call cache is off unless ``--cache`` is given, so timings are real.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from archon.compiler import compile_source
from archon.eval import EvalConfig, EvalResult, evaluate, load_dataset
from archon.eval.baselines import item_scores
from archon.eval.stats import paired_difference
from archon.ir import Pipeline
from archon.layers._steps import STEP_SYSTEM_PROMPT
from archon.runtime import CallCache, Limits
from archon.runtime.clients.local import models as local_models
from archon.runtime.clients.router import RouterClient
from archon.runtime.home import archon_home

CONFIGS = ("bon_vote", "beam", "particle")
DATASETS = {"arithmetic": ("bigbench/arithmetic", "number"), "math": ("math", "auto")}


@dataclass(frozen=True)
class Shape:
    """How one configuration spends a budget of ``budget`` calls per query."""

    config: str
    budget: int
    body: str


@dataclass(frozen=True)
class Row:
    dataset: str
    shape: Shape
    result: EvalResult
    wall_s: float


def shapes(budget: int, rounds: int, scorer: str, step_tokens: int, extract: str) -> list[Shape]:
    """The three configurations at ``budget`` calls per query (searches: ``rounds`` steps)."""
    per_call = 2 if scorer == "self_eval" else 1
    width = max(1, (budget - (1 if scorer == "self_eval" else 0)) // (rounds * per_call))
    beam_width = max(1, width // 2)
    expansions = max(1, width // beam_width)
    common = (
        f'max_steps = {rounds}, step_tokens = {step_tokens}, scorer = "{scorer}", temperature = 0.8'
    )
    vote = f'vote(extract = "{extract}")'
    system = STEP_SYSTEM_PROMPT.replace("\\", "\\\\")
    return [
        Shape(
            "bon_vote",
            budget,
            f"generate(models = [q], samples = {budget}, temperature = 0.8,"
            f' max_tokens = {rounds * step_tokens}, system_prompt = "{system}")\n{vote}',
        ),
        Shape(
            "beam",
            budget,
            f"beam_search(model = q, beam_width = {beam_width}, expansions = {expansions},"
            f" {common})\n{vote}",
        ),
        Shape(
            "particle", budget, f"particle_filter(model = q, particles = {width}, {common})\n{vote}"
        ),
    ]


def build(body: str, model: str) -> Pipeline:
    return compile_source(f'models {{ q = "{model}" }}\npipeline bench {{\n{body}\n}}\n')


async def measure(
    name: str, items: int, plan: list[Shape], model: str, config: EvalConfig,
    records: Path | None,
) -> list[Row]:  # fmt: skip
    spec, _ = DATASETS[name]
    dataset = load_dataset(spec).head(items)
    rows = []
    for shape in plan:
        pipeline = build(shape.body, model)
        chosen = config
        if records is not None:
            chosen = config.replace(
                records_path=records / f"{name}.{shape.config}.{shape.budget}.jsonl"
            )
        started = time.perf_counter()
        result = await evaluate(pipeline, dataset, chosen)
        rows.append(Row(name, shape, result, time.perf_counter() - started))
        print(f"  {line(rows[-1])}", file=sys.stderr, flush=True)
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def line(row: Row) -> str:
    s = row.result.summary
    c = s.cost
    return (
        f"| {row.dataset} | {row.shape.budget} | {row.shape.config} | {s.n} |"
        f" {_pct(s.accuracy)} | {c.calls_per_item:.1f} | {c.tokens_in_per_item:.0f} |"
        f" {c.tokens_out_per_item:.0f} | {row.wall_s / max(1, s.n):.1f} | {s.errors} |"
    )


HEADER = (
    "| dataset | calls budget | config | items | accuracy | calls/query | tokens in/q |"
    " tokens out/q | wall s/q | failed |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def versus_best_of_n(rows: list[Row]) -> list[str]:
    """Each search against best-of-N + vote at the same budget, paired by item."""
    out = []
    for row in rows:
        if row.shape.config == "bon_vote":
            continue
        base = next(
            (
                r
                for r in rows
                if (r.dataset, r.shape.budget, r.shape.config)
                == (row.dataset, row.shape.budget, "bon_vote")
            ),
            None,
        )
        if base is None:
            continue
        diff = paired_difference(item_scores(row.result), item_scores(base.result))
        if diff is not None:
            out.append(
                f"* {row.dataset} at {row.shape.budget} calls: {row.shape.config} - bon_vote ="
                f" {diff.text().removesuffix(' *')} points over {diff.items} items"
                f" ({'CI excludes 0' if diff.excludes_zero else 'noise: CI includes 0'})"
            )
    return out


def winners(rows: list[Row]) -> list[str]:
    """Per dataset and budget: the configuration(s) with the best accuracy."""
    out = []
    for key in dict.fromkeys((r.dataset, r.shape.budget) for r in rows):
        group = [r for r in rows if (r.dataset, r.shape.budget) == key]
        best = max(r.result.summary.accuracy or 0.0 for r in group)
        names = [r.shape.config for r in group if (r.result.summary.accuracy or 0.0) == best]
        out.append(f"* {key[0]} at {key[1]} calls: {' = '.join(names)} ({100 * best:.0f}%)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=20, help="items per dataset")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--budgets", default="8,16", help="model calls per query")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--rounds", type=int, default=4, help="steps of each search")
    parser.add_argument("--step-tokens", type=int, default=96)
    parser.add_argument("--scorer", choices=("logprob", "self_eval"), default="logprob")
    parser.add_argument("--model", default=f"local/{local_models.DEFAULT_MODEL}")
    parser.add_argument("--model-path", type=Path, help="GGUF file for the local model")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--cache", action="store_true", help="use the persistent call cache")
    parser.add_argument("--out", type=Path, help="append the results (Markdown) to this file")
    parser.add_argument("--records", type=Path, help="folder of per-item records (resumable)")
    parser.add_argument("--resume", action="store_true", help="skip items already in --records")
    args = parser.parse_args()
    configs = [c for c in args.configs.split(",") if c]
    names = [d for d in args.datasets.split(",") if d]
    if set(configs) - set(CONFIGS) or set(names) - set(DATASETS):
        parser.error(f"configs: {', '.join(CONFIGS)}; datasets: {', '.join(DATASETS)}")
    budgets = [int(b) for b in args.budgets.split(",") if b]
    home = archon_home()
    client = RouterClient(
        local_resolve=lambda name: local_models.ensure(name, home),
        local_paths={"*": args.model_path} if args.model_path else None,
    )
    cache = CallCache(home / "cache.sqlite") if args.cache else None
    if args.resume and args.records is None:
        parser.error("--resume needs --records FOLDER")
    config = EvalConfig.of(
        client=client,
        limits=Limits(timeout_s=600.0),
        cache=cache,
        concurrency=args.concurrency,
        resume=args.resume,
    )

    async def go() -> list[Row]:
        rows: list[Row] = []
        try:
            for name in names:
                plan = [
                    shape
                    for budget in budgets
                    for shape in shapes(
                        budget, args.rounds, args.scorer, args.step_tokens, DATASETS[name][1]
                    )
                    if shape.config in configs
                ]
                rows += await measure(name, args.items, plan, args.model, config, args.records)
        finally:
            await client.aclose()
        return rows

    started = time.perf_counter()
    rows = asyncio.run(go())
    total = time.perf_counter() - started
    caption = (
        f"{datetime.date.today().isoformat()}: model {args.model}, first {args.items} items,"
        f" {args.rounds} search steps of {args.step_tokens} tokens, scorer {args.scorer};"
        f" {platform.machine()} {sys.platform}, {total / 60:.1f} min in all,"
        f" cache {'on' if cache else 'off'}"
    )
    table = "\n".join([HEADER, *(line(r) for r in rows)])
    text = (
        f"{caption}\n\n{table}\n\nWinner at each budget:\n\n"
        + "\n".join(winners(rows))
        + "\n\nPaired against best-of-N + vote (bootstrap 95% CI):\n\n"
        + "\n".join(versus_best_of_n(rows))
    )
    print(text)
    if args.out is not None:
        with args.out.open("a", encoding="utf-8") as handle:
            handle.write(f"\n### {text}\n")


if __name__ == "__main__":
    main()
