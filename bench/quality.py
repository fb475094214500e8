"""Quality benchmark: accuracy and cost per query of four architectures on the local model.

Configurations (all on ``local/qwen2.5-coder-0.5b`` unless ``--model`` says otherwise):

* ``single``      one greedy sample;
* ``best_of_5``   5 samples, 5 generated tests run in the sandbox (code) or judged by the model
                  (natural-language checks for arithmetic), keep the candidate passing most;
* ``vote_5``      5 samples, majority vote on the extracted answer (code / number);
* ``archon``      the Archon shape: 5 samples -> critique -> rank (top 3) -> fuse.

Datasets: HumanEval (first ``--humaneval`` problems, pass@1 in the sandbox) and BIG-bench
arithmetic (first ``--arithmetic`` items of the committed, subtask-balanced subset, exact match).

    python bench/quality.py --limit 5            # both datasets, 5 items each
    python bench/quality.py --humaneval 40 --arithmetic 50 --out bench/results/quality.md

Figures go to stdout as a Markdown table; ``--out`` appends them, with the date and sizes, to
a results file. The call cache is off unless ``--cache`` is given, so timings are real.
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
from archon.ir import Pipeline
from archon.runtime import CallCache, Limits
from archon.runtime import models as local_models
from archon.runtime.clients.router import RouterClient

CODE = {
    "single": "generate(models = [q], temperature = 0.0, max_tokens = {tokens})",
    "best_of_5": """
      candidates = generate(models = [q], samples = 5, temperature = 0.8, max_tokens = {tokens})
      tests = unit_test_generate(model = q, num_tests = 5, mode = "code", max_tokens = 256)
      unit_test_evaluate(top_k = 1, timeout_s = 5.0) <- candidates, tests""",
    "vote_5": """
      generate(models = [q], samples = 5, temperature = 0.8, max_tokens = {tokens})
      vote(extract = "code")""",
    "archon": """
      generate(models = [q], samples = 5, temperature = 0.8, max_tokens = {tokens})
      critique(model = q, mode = "all", max_tokens = 256)
      rank(model = q, top_k = 3)
      fuse(models = [q], max_tokens = {tokens})""",
}
ARITHMETIC = {
    "single": CODE["single"],
    "best_of_5": """
      candidates = generate(models = [q], samples = 5, temperature = 0.8, max_tokens = {tokens})
      tests = unit_test_generate(model = q, num_tests = 2, mode = "natural", max_tokens = 128)
      unit_test_evaluate(model = q, top_k = 1, max_tokens = 16) <- candidates, tests""",
    "vote_5": """
      generate(models = [q], samples = 5, temperature = 0.8, max_tokens = {tokens})
      vote(extract = "number")""",
    "archon": CODE["archon"],
}
TOKENS = {"humaneval": 320, "arithmetic": 32}


@dataclass(frozen=True)
class Row:
    dataset: str
    config: str
    result: EvalResult
    wall_s: float


def build(body: str, model: str, tokens: int) -> Pipeline:
    text = f'models {{ q = "{model}" }}\npipeline {{name}} {{\n{body}\n}}\n'
    return compile_source(text.replace("{tokens}", str(tokens)).replace("{name}", "bench"))


async def measure(
    dataset_name: str, limit: int, configs: list[str], model: str, client: RouterClient,
    cache: CallCache | None, concurrency: int,
) -> list[Row]:  # fmt: skip
    spec = "humaneval" if dataset_name == "humaneval" else "bigbench/arithmetic"
    dataset = load_dataset(spec).head(limit)
    table = CODE if dataset_name == "humaneval" else ARITHMETIC
    rows = []
    for config in configs:
        pipeline = build(table[config], model, TOKENS[dataset_name])
        started = time.perf_counter()
        config = EvalConfig(
            client=client, limits=Limits(timeout_s=600.0), cache=cache, concurrency=concurrency
        )
        result = await evaluate(pipeline, dataset, config)
        rows.append(Row(dataset_name, config, result, time.perf_counter() - started))
        print(f"  {dataset_name}/{config}: {line(rows[-1])}", file=sys.stderr, flush=True)
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def line(row: Row) -> str:
    s = row.result.summary
    c = s.cost
    return (
        f"| {row.dataset} | {row.config} | {s.n} | {_pct(s.accuracy)} | {_pct(s.coverage)} |"
        f" {c.calls_per_item:.1f} | {c.tokens_in_per_item:.0f} | {c.tokens_out_per_item:.0f} |"
        f" {c.seconds_per_item:.1f} | {row.wall_s / max(1, s.n):.1f} | {s.errors} |"
    )


HEADER = (
    "| dataset | config | items | accuracy | coverage | calls/query | tokens in/q |"
    " tokens out/q | latency s/q | wall s/q | failed |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, help="items per dataset (sets both sizes)")
    parser.add_argument("--humaneval", type=int, default=40, help="HumanEval problems")
    parser.add_argument("--arithmetic", type=int, default=50, help="arithmetic items")
    parser.add_argument("--configs", default=",".join(CODE), help="comma-separated configs")
    parser.add_argument("--datasets", default="humaneval,arithmetic")
    parser.add_argument("--model", default=f"local/{local_models.DEFAULT_MODEL}")
    parser.add_argument("--model-path", type=Path, help="GGUF file for the local model")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--cache", action="store_true", help="use the persistent call cache")
    parser.add_argument("--out", type=Path, help="append the results (Markdown) to this file")
    args = parser.parse_args()
    sizes = {
        "humaneval": args.limit or args.humaneval,
        "arithmetic": args.limit or args.arithmetic,
    }
    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(CODE)
    if unknown:
        parser.error(f"unknown configs {sorted(unknown)}; choose from {', '.join(CODE)}")
    home = local_models.archon_home()
    client = RouterClient(
        local_resolve=lambda name: local_models.ensure(name, home),
        local_paths={"*": args.model_path} if args.model_path else None,
    )
    cache = CallCache(home / "cache.sqlite") if args.cache else None

    async def go() -> list[Row]:
        rows: list[Row] = []
        try:
            for name in args.datasets.split(","):
                rows += await measure(
                    name, sizes[name], configs, args.model, client, cache, args.concurrency
                )
        finally:
            await client.aclose()
        return rows

    started = time.perf_counter()
    rows = asyncio.run(go())
    total = time.perf_counter() - started
    stamp = datetime.date.today().isoformat()
    caption = (
        f"{stamp}: model {args.model}, HumanEval first {sizes['humaneval']}, BIG-bench arithmetic"
        f" first {sizes['arithmetic']}; {platform.machine()} {sys.platform},"
        f" {total / 60:.1f} min in all, cache {'on' if cache else 'off'}"
    )
    table = "\n".join([HEADER, *(line(r) for r in rows)])
    print(f"{caption}\n\n{table}")
    if args.out is not None:
        with args.out.open("a", encoding="utf-8") as handle:
            handle.write(f"\n### {caption}\n\n{table}\n")


if __name__ == "__main__":
    main()
