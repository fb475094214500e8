"""Quality benchmark: architectures against their baselines, with paired confidence intervals.

For every architecture (a ``.pipe`` file, a template with ``=params.json``, or a built-in
name) on one dataset slice, it reports accuracy, coverage, calls per query (in all and per
model), wall seconds per item, and next to it the baselines of :mod:`archon.eval.baselines`:

* ``single[M]``: one greedy sample of each model ``M`` the architecture uses;
* ``voteN[M]``: equal-cost repeated sampling -- as many samples of the best single model as
  the architecture spends calls per query, selected by majority vote;

each with the architecture-minus-baseline difference, its paired bootstrap 95 % confidence
interval over the items, and whether the interval excludes 0. With several architectures the
first is also compared, the same way, with each of the others on the items both scored (so
``--no-baselines`` with explicit baseline files, such as ``bench/archs/single_small.pipe``,
gives plain-prompt baselines).

Built-in architectures (built on ``--model``): ``single``, ``best_of_5`` (5 samples + 5
generated tests), ``vote_5`` (5 samples + majority vote), ``archon`` (5 samples -> critique ->
rank -> fuse); they adapt to code (HumanEval, MBPP ...) or short answers (arithmetic, GSM8K).

    python bench/quality.py examples/baseline.pipe single vote_5 --dataset humaneval --limit 2
    python bench/quality.py code.pipe tpl.pipe=best.json --dataset humaneval --split dev \\
        --records bench/records --resume              # a long run continues after a stop

The table goes to stdout and, as a Markdown section with the date and the command, is
appended to ``--out`` (default ``bench/results/quality.md``; ``--no-out`` to skip). The call
cache is off unless ``--cache`` is given, so timings are real.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from archon.compiler import compile_source
from archon.compiler.structure import assign
from archon.eval import Dataset, EvalConfig, EvalResult, evaluate, load_dataset, select_split
from archon.eval.baselines import BaselineRow, compare_baselines, item_scores
from archon.eval.stats import paired_difference
from archon.ir import Pipeline, Value
from archon.layers import default_registry
from archon.runtime import CallCache, Limits, ModelClient
from archon.runtime.clients.local import models as local_models
from archon.runtime.clients.router import RouterClient, pipeline_options
from archon.runtime.home import archon_home

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
SHORT = {
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
TOKENS = {"code": 320, "short": 32}


@dataclass(frozen=True)
class Arch:
    """An architecture to measure: a label for the tables and its concrete pipeline."""

    label: str
    pipeline: Pipeline


@dataclass(frozen=True)
class Measured:
    """An architecture's evaluation, its wall time, and its baselines."""

    arch: Arch
    result: EvalResult
    wall_s: float
    baselines: tuple[BaselineRow, ...] = ()


def builtin(name: str, model: str, code: bool) -> Arch:
    """A built-in architecture on ``model`` (code or short-answer variant)."""
    body = (CODE if code else SHORT)[name].replace(
        "{tokens}", str(TOKENS["code" if code else "short"])
    )
    text = f'models {{ q = "{model}" }}\npipeline {name} {{\n{body}\n}}\n'
    return Arch(name, compile_source(text))


def from_file(spec: str) -> Arch:
    """``FILE.pipe`` or ``FILE.pipe=PARAMS.json`` (a template with its hole values)."""
    path_text, _, params_text = spec.partition("=")
    path = Path(path_text)
    template = compile_source(path.read_text(encoding="utf-8"), path=str(path))
    params: dict[str, object] = {}
    if params_text:
        data = json.loads(Path(params_text).read_text(encoding="utf-8"))
        params = data["params"] if isinstance(data.get("params"), dict) else data
    concrete, _ = assign(template, cast(dict[str, Value], params), default_registry())
    label = path.stem + (f"[{Path(params_text).stem}]" if params_text else "")
    return Arch(label, concrete)


def architectures(specs: Sequence[str], model: str, code: bool) -> list[Arch]:
    """The architectures named on the command line, in order."""
    return [builtin(s, model, code) if s in CODE else from_file(s) for s in specs]


def records_config(config: EvalConfig, folder: Path | None, dataset: str, label: str) -> EvalConfig:
    """``config`` with the architecture's own records file under ``folder`` (if any)."""
    if folder is None:
        return config
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{dataset}.{label}")
    return config.replace(records_path=folder / f"{slug}.jsonl")


async def measure(
    arch: Arch, dataset: Dataset, config: EvalConfig, *, baselines: bool = True
) -> Measured:
    """Evaluate ``arch`` on ``dataset``, then its baselines on the same items."""
    started = time.perf_counter()
    result = await evaluate(arch.pipeline, dataset, config)
    wall = time.perf_counter() - started
    rows = await compare_baselines(arch.pipeline, dataset, config, result) if baselines else ()
    return Measured(arch, result, wall, rows)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _calls(result: EvalResult) -> float:
    cost = result.summary.cost
    return (cost.calls + cost.cache_hits) / max(1, cost.items)


def _by_model(result: EvalResult) -> str:
    cost = result.summary.cost
    items = max(1, cost.items)
    return ", ".join(f"{m.model} {(m.calls + m.cache_hits) / items:.1f}" for m in cost.by_model)


ARCH_HEADER = (
    "| architecture | items | accuracy | coverage | calls/query | calls/query mean, median, max |"
    " tokens/query mean, median, max | calls/query by model | early exits |"
    " wall s/item | failed |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


def _spread(result: EvalResult) -> tuple[str, str]:
    """Mean, median and maximum calls and tokens per query (cache hits counted)."""
    spread = result.summary.cost.per_query
    if spread is None:
        return "-", "-"
    c, t = spread.calls, spread.tokens
    return (
        f"{c.mean:.2f}, {c.median:g}, {c.max:g}",
        f"{t.mean:,.0f}, {t.median:,.0f}, {t.max:,.0f}",
    )


BASELINE_HEADER = (
    "| architecture | baseline | accuracy | calls/query | wall s/item |"
    " architecture - baseline [95% CI] | CI excludes 0 |\n|---|---|---|---|---|---|---|"
)


def arch_row(m: Measured) -> str:
    """One line of the architecture table."""
    s = m.result.summary
    calls, tokens = _spread(m.result)
    exits = s.cost.per_query.exited if s.cost.per_query is not None else 0
    return (
        f"| {m.arch.label} | {s.n} | {_pct(s.accuracy)} | {_pct(s.coverage)} |"
        f" {_calls(m.result):.1f} | {calls} | {tokens} | {_by_model(m.result)} | {exits} |"
        f" {m.wall_s / max(1, s.n):.1f} | {s.errors} |"
    )


def baseline_rows(m: Measured) -> list[str]:
    """The architecture's baselines, one line each, with the paired difference."""
    lines = []
    for row in m.baselines:
        s, diff = row.result.summary, row.versus
        interval = "-" if diff is None else diff.text().removesuffix(" *") + " points"
        excludes = "-" if diff is None else ("yes" if diff.excludes_zero else "no")
        lines.append(
            f"| {m.arch.label} | {row.name} | {_pct(s.accuracy)} | {_calls(row.result):.1f} |"
            f" {row.wall_s / max(1, s.n):.1f} | {interval} | {excludes} |"
        )
    return lines


VERSUS_HEADER = (
    "| architecture | versus | items | architecture - versus [95% CI] | CI excludes 0 |\n"
    "|---|---|---|---|---|"
)


def versus_rows(measured: Sequence[Measured]) -> list[str]:
    """The first architecture against each other one, paired on the items both scored."""
    if len(measured) < 2:
        return []
    first, lines = measured[0], []
    for other in measured[1:]:
        diff = paired_difference(item_scores(first.result), item_scores(other.result))
        if diff is None:
            continue
        lines.append(
            f"| {first.arch.label} | {other.arch.label} | {diff.items} |"
            f" {diff.text().removesuffix(' *')} points | {'yes' if diff.excludes_zero else 'no'} |"
        )
    return lines


def markdown(measured: Sequence[Measured], caption: str, command: str) -> str:
    """The results section: caption, the tables, and the command that produced them."""
    parts = [f"### {caption}", "", ARCH_HEADER, *(arch_row(m) for m in measured)]
    versus = versus_rows(measured)
    if versus:
        parts += ["", VERSUS_HEADER, *versus]
    with_baselines = [m for m in measured if m.baselines]
    if with_baselines:
        lines = [line for m in with_baselines for line in baseline_rows(m)]
        parts += ["", BASELINE_HEADER, *lines]
    parts += ["", f"Run with `{command}`."]
    return "\n".join(parts) + "\n"


def slice_of(args: argparse.Namespace) -> Dataset:
    """The dataset slice: the seeded split, then the first ``--limit`` items."""
    dataset = load_dataset(args.dataset)
    if args.split != "all":
        dataset = select_split(dataset, args.split, seed=args.split_seed)
    return dataset.head(args.limit)


def make_client(archs: Sequence[Arch], model_path: Path | None) -> ModelClient:
    """One client for every architecture (local models load once and stay loaded)."""
    options = {}
    for arch in archs:
        options.update(pipeline_options(arch.pipeline))
    home = archon_home()
    return RouterClient(
        options,
        local_resolve=lambda name: local_models.ensure(name, home),
        local_paths={"*": model_path} if model_path else None,
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("archs", nargs="+", help="FILE.pipe, FILE.pipe=PARAMS.json or a built-in")
    parser.add_argument("--dataset", default="humaneval", help="dataset name, path or hf:NAME")
    parser.add_argument("--split", default="all", choices=("dev", "test", "all"))
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="at most N items of the slice")
    parser.add_argument("--model", default=f"local/{local_models.DEFAULT_MODEL}")
    parser.add_argument("--model-path", type=Path, help="GGUF file for every local model")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--records", type=Path, help="folder of per-item records (resumable)")
    parser.add_argument("--resume", action="store_true", help="skip items already in --records")
    parser.add_argument("--no-baselines", action="store_true", help="architectures only")
    parser.add_argument("--cache", action="store_true", help="use the persistent call cache")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/quality.md"))
    parser.add_argument("--no-out", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.resume and args.records is None:
        parser.error("--resume needs --records FOLDER")
    return args


async def run_all(
    archs: Sequence[Arch], dataset: Dataset, config: EvalConfig, args: argparse.Namespace
) -> list[Measured]:
    measured = []
    for arch in archs:
        chosen = records_config(config, args.records, dataset.name, arch.label)
        measured.append(await measure(arch, dataset, chosen, baselines=not args.no_baselines))
        print(arch_row(measured[-1]), file=sys.stderr, flush=True)
    return measured


def main(argv: Sequence[str] | None = None) -> None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(arguments)
    dataset = slice_of(args)
    archs = architectures(args.archs, args.model, dataset.metric == "code")
    home = archon_home()
    cache = CallCache(home / "cache.sqlite") if args.cache else None
    client = make_client(archs, args.model_path)
    config = EvalConfig.of(
        client=client,
        limits=Limits(timeout_s=600.0),
        cache=cache,
        concurrency=args.concurrency,
        resume=args.resume,
        seed=args.seed,
    )

    async def go() -> list[Measured]:
        try:
            return await run_all(archs, dataset, config, args)
        finally:
            await client.aclose()

    started = time.perf_counter()
    measured = asyncio.run(go())
    caption = (
        f"{datetime.date.today().isoformat()}: {dataset.name} ({args.split} split, seed"
        f" {args.split_seed}, {len(dataset)} items); {platform.machine()} {sys.platform},"
        f" {(time.perf_counter() - started) / 60:.1f} min in all, cache {'on' if cache else 'off'}"
    )
    command = "python bench/quality.py " + " ".join(shlex.quote(a) for a in arguments)
    text = markdown(measured, caption, command)
    print(text)
    if not args.no_out:
        with args.out.open("a", encoding="utf-8") as handle:
            handle.write("\n" + text)


if __name__ == "__main__":
    main()
