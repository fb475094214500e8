"""Completion tokens of code answers with and without ``stop_after_code``.

One greedy sample of a code model (default: the embedded Qwen2.5-Coder-0.5B) on the first
``--limit`` HumanEval problems, twice: as is, and with ``stop_after_code = true``, which ends
each reply at the closing fence of its first code block instead of letting the model explain
its program. Prints completion tokens per query of both runs and their ratio, pass@1 of both
(one greedy sample, run in the sandbox by the ``code`` metric), wall seconds per query, and
how many replies kept the same program.

It also replays the stop sequence that API backends send instead
(:data:`~archon.runtime.clients.code_stop.FENCE_STOP`) on the plain run's replies: for each
reply with text after its code block, whether the stop sequence would end it at the closing
fence (the repaired reply holding the same program), miss it (the reply costs its full
length, the extra text is still cut client-side), or cut before the block closes.

    PYTHONPATH=. python bench/code_tokens.py [--limit 10] [--model local/qwen2.5-coder-0.5b]
        [--temperature 0.0] [--plain-prompt]

The dataset's prompts ask for the answer "in one ```python code block", which small models
mostly obey without a word after the block; ``--plain-prompt`` drops that sentence, so the
prompt is what a user would type. The call cache is off, so both runs call the model.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from archon.compiler import compile_source
from archon.eval import Dataset, EvalConfig, EvalResult, evaluate, load_dataset
from archon.eval.records import ItemRecord
from archon.layers.answers import extract_code
from archon.runtime import Limits, ModelClient
from archon.runtime.clients.code_stop import FENCE_STOP, close_code, cut_after_code
from archon.runtime.clients.local import models as local_models
from archon.runtime.clients.router import RouterClient
from archon.runtime.home import archon_home
from archon.values import CompletionRequest, Message

PIPELINE = """models {{ q = "{model}" }}
pipeline {name} {{
  generate(models = [q], temperature = {temperature}, max_tokens = {tokens}{extra})
}}
"""
FORMAT_SENTENCE = re.compile(r"[ \t]*Reply with [^\n]*? code block\.")
"""The loaders' request for one fenced block (HumanEval, MBPP, contests)."""


@dataclass(frozen=True)
class Run:
    """One evaluation of the pipeline and its wall time."""

    label: str
    result: EvalResult
    wall_s: float

    @property
    def tokens_per_query(self) -> float:
        return self.result.summary.cost.tokens_out_per_item

    @property
    def pass_at_1(self) -> float | None:
        return self.result.summary.accuracy

    def texts(self) -> dict[str, str]:
        """The sampled reply of each item, by item id."""
        return {record.id: reply(record) for record in self.result.records}


def reply(record: ItemRecord) -> str:
    """The text the generate node sampled for ``record`` ('' when the item failed)."""
    return next((c.text for c in record.candidates if c.source), "")


def pipeline_text(
    model: str, max_tokens: int, stop_after_code: bool, temperature: float = 0.0
) -> str:
    """The one-node pipeline: one sample, ending after the code block when asked."""
    return PIPELINE.format(
        model=model,
        name="stop_after_code" if stop_after_code else "plain",
        temperature=temperature,
        tokens=max_tokens,
        extra=", stop_after_code = true" if stop_after_code else "",
    )


def plain_prompts(dataset: Dataset) -> Dataset:
    """``dataset`` without the sentence asking for one code block in its prompts."""
    items = tuple(
        item.model_copy(
            update={"turns": tuple(FORMAT_SENTENCE.sub("", t).strip() for t in item.turns)}
        )
        for item in dataset.items
    )
    return dataset.with_items(items)


async def measure(
    label: str, source: str, dataset: Dataset, client: ModelClient, concurrency: int
) -> Run:
    """Evaluate the pipeline in ``source`` on ``dataset`` (no cache)."""
    config = EvalConfig.of(client=client, limits=Limits(timeout_s=600.0), concurrency=concurrency)
    started = time.perf_counter()
    result = await evaluate(compile_source(source), dataset, config)
    return Run(label, result, time.perf_counter() - started)


def api_stop_outcome(text: str) -> str:
    """What :data:`FENCE_STOP` would do to ``text``, a reply generated without stopping."""
    block = cut_after_code(text)
    if block is None:
        return "no complete code block"
    if not text[len(block) :].strip():
        return "nothing after the block"
    at = text.find(FENCE_STOP)
    if at < 0:
        return "stop sequence misses (full length, cut client-side)"
    if extract_code(close_code(text[:at])) == extract_code(block):
        return "stop sequence ends it at the closing fence"
    return "stop sequence cuts before the block closes"


def same_programs(plain: Run, stopped: Run) -> int:
    """Items whose extracted program is the same in both runs."""
    before, after = plain.texts(), stopped.texts()
    return sum(extract_code(before[k]) == extract_code(after.get(k, "")) for k in before)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def report(plain: Run, stopped: Run) -> str:
    """The comparison table and the replay of the API stop sequence, as Markdown."""
    n = plain.result.summary.n
    ratio = stopped.tokens_per_query / plain.tokens_per_query if plain.tokens_per_query else 0
    lines = [
        "| run | items | completion tokens/query | pass@1 | wall s/query |",
        "|---|---|---|---|---|",
    ]
    for run in (plain, stopped):
        s = run.result.summary
        lines.append(
            f"| {run.label} | {s.n} | {run.tokens_per_query:.1f} | {_pct(run.pass_at_1)} |"
            f" {run.wall_s / max(1, s.n):.1f} |"
        )
    lines += [
        "",
        f"completion tokens with / without: {ratio:.2f}"
        f" ({1 - ratio:.0%} fewer); same program in {same_programs(plain, stopped)}/{n} replies",
        "",
        "API stop sequence replayed on the plain replies:",
    ]
    outcomes = Counter(api_stop_outcome(text) for text in plain.texts().values())
    lines += [f"  {count:3d}  {outcome}" for outcome, count in outcomes.most_common()]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--limit", type=int, default=10, help="the first N HumanEval problems")
    parser.add_argument("--model", default=f"local/{local_models.DEFAULT_MODEL}")
    parser.add_argument("--max-tokens", type=int, default=320)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--dataset", default="humaneval")
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    parser.add_argument(
        "--plain-prompt", action="store_true", help="drop the prompts' one-code-block request"
    )
    return parser.parse_args(argv)


async def compare(
    dataset: Dataset,
    client: ModelClient,
    model: str,
    max_tokens: int,
    concurrency: int,
    temperature: float = 0.0,
) -> tuple[Run, Run]:
    """The plain run, then the ``stop_after_code`` run, on the same client (the model is
    loaded by a first one-token call, so neither run's wall time includes the load)."""
    await client.complete(
        CompletionRequest(model=model, messages=(Message(role="user", content="Hi"),), max_tokens=1)
    )
    runs = []
    for label, asked in (("plain", False), ("stop_after_code", True)):
        source = pipeline_text(model, max_tokens, asked, temperature)
        runs.append(await measure(label, source, dataset, client, concurrency))
    return runs[0], runs[1]


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    dataset = load_dataset(args.dataset).head(args.limit)
    if args.plain_prompt:
        dataset = plain_prompts(dataset)
    home = archon_home()
    client = RouterClient(local_resolve=lambda name: local_models.ensure(name, home))

    async def go() -> tuple[Run, Run]:
        try:
            return await compare(
                dataset, client, args.model, args.max_tokens, args.concurrency, args.temperature
            )
        finally:
            await client.aclose()

    plain, stopped = asyncio.run(go())
    prompts = "plain prompts" if args.plain_prompt else "the dataset's prompts"
    print(
        f"{dataset.name}, first {len(dataset)} problems, {args.model},"
        f" temperature {args.temperature}, {prompts}"
    )
    print(report(plain, stopped))


if __name__ == "__main__":
    main()
