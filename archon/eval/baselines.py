"""The baselines every quality report shows next to an architecture.

An architecture earns its calls only if it beats what the same models do without it:

* **single sample** of each model the architecture uses (:func:`single_sample`): one greedy
  call with the architecture's own prompt settings;
* **equal-cost repeated sampling** (:func:`repeated_sampling`): as many calls as the
  architecture spends per query, all on samples of the best single model, selected by
  majority vote -- the baseline of "Self-MoA" and of "Rethinking Mixture-of-Agents", which
  often beats mixed ensembles.

Majority rule (the ``vote`` layer kind): for non-code metrics the most common extracted answer
(``extract = "auto"``: exact match of the extracted answer text after normalisation); for the
``code`` metric the most common program (``extract = "code"``: the largest fenced code block,
compared after lower-casing and collapsing whitespace), ties broken by the first sample. Grouping
code by its *behaviour* would need to execute it; this baseline stays execution-free on
purpose, so that an architecture using execution shows what execution adds.

:func:`compare_baselines` evaluates them on the architecture's items and pairs each with the
architecture's per-item scores (:mod:`archon.eval.stats`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from archon.eval.config import EvalConfig
from archon.eval.evaluate import EvalResult, evaluate
from archon.eval.items import Dataset
from archon.eval.stats import Difference, paired_difference
from archon.ir import Node, Param, Pipeline, Value

SAMPLE_TEMPERATURE = 0.8
"""Temperature of the repeated-sampling baseline when the architecture samples greedily."""

_COPIED = ("max_tokens", "prompt", "system_prompt", "top_p")
"""Prompt and length settings the baselines take from the architecture's first generator."""


def models_of(pipeline: Pipeline) -> tuple[str, ...]:
    """The models a concrete pipeline's nodes call (``model`` / ``models``), first use first."""
    seen: dict[str, None] = {}
    for node in pipeline.nodes:
        for param in node.params:
            if param.name not in ("model", "models"):
                continue
            values = param.value if isinstance(param.value, tuple) else (param.value,)
            seen.update((v, None) for v in values if isinstance(v, str) and v)
    return tuple(seen)


def _source_settings(pipeline: Pipeline) -> tuple[tuple[Param, ...], float | None]:
    """The copied settings and the temperature of the first generator reading the query."""
    source = next((n for n in pipeline.nodes if not n.inputs and n.kind == "generate"), None)
    if source is None:
        return (), None
    params = tuple(Param(name=p.name, value=p.value) for p in source.params if p.name in _COPIED)
    temperature = source.param("temperature")
    value = temperature.value if temperature is not None else None
    return params, float(value) if isinstance(value, int | float) else None


def _pipeline(template: Pipeline, name: str, model: str, nodes: tuple[Node, ...]) -> Pipeline:
    specs = tuple(spec for spec in template.models if spec.model == model)
    return Pipeline(name=name, nodes=nodes, output=nodes[-1].id, models=specs)


def _generate(model: str, samples: int, temperature: float, extra: tuple[Param, ...]) -> Node:
    values: tuple[tuple[str, Value], ...] = (
        ("models", (model,)),
        ("samples", samples),
        ("temperature", temperature),
    )
    params = tuple(Param(name=k, value=v) for k, v in values) + extra
    return Node(id="generate_1", kind="generate", params=params)


def single_sample(pipeline: Pipeline, model: str) -> Pipeline:
    """One greedy sample of ``model`` with ``pipeline``'s prompt and length settings."""
    extra, _ = _source_settings(pipeline)
    return _pipeline(pipeline, f"single[{model}]", model, (_generate(model, 1, 0.0, extra),))


def repeated_sampling(pipeline: Pipeline, model: str, samples: int, *, code: bool) -> Pipeline:
    """``samples`` samples of ``model``, majority vote (``code``: by normalised program)."""
    extra, temperature = _source_settings(pipeline)
    heat = temperature if temperature else SAMPLE_TEMPERATURE
    vote = Node(
        id="vote_1",
        kind="vote",
        params=(Param(name="extract", value="code" if code else "auto"),),
        inputs=("generate_1",),
    )
    name = f"vote{samples}[{model}]"
    return _pipeline(pipeline, name, model, (_generate(model, samples, heat, extra), vote))


def equal_cost_samples(calls_per_item: float) -> int:
    """The samples a repeated-sampling baseline gets for an architecture's calls per query."""
    return max(1, math.floor(calls_per_item + 0.5))


def item_scores(result: EvalResult) -> dict[str, float]:
    """Per-item scores of an evaluation (unscorable items left out), by item id."""
    return {r.id: r.score for r in result.records if r.valid}


@dataclass(frozen=True)
class BaselineRow:
    """One baseline next to the architecture.

    Attributes:
        name: ``single[model]`` or ``voteN[model]``.
        model: the model it samples; ``samples``: calls per query it spends.
        result: its evaluation on the architecture's items; ``wall_s``: how long it took.
        versus: architecture minus baseline, paired by item (None: nothing to pair).
    """

    name: str
    model: str
    samples: int
    result: EvalResult
    versus: Difference | None
    wall_s: float = 0.0


def _records(config: EvalConfig, name: str) -> EvalConfig:
    """Each baseline keeps its own records file next to the architecture's (for resume)."""
    path = config.records_path
    if path is None:
        return config
    slug = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    path = Path(path)
    return config.replace(records_path=path.with_name(f"{path.stem}.{slug}{path.suffix}"))


async def _baseline(
    pipeline: Pipeline,
    model: str,
    samples: int,
    parts: tuple[Dataset, EvalConfig, Mapping[str, float]],
) -> BaselineRow:
    dataset, config, scores = parts
    started = time.perf_counter()
    result = await evaluate(pipeline, dataset, _records(config, pipeline.name))
    wall = time.perf_counter() - started
    versus = paired_difference(scores, item_scores(result), seed=config.env.seed)
    return BaselineRow(pipeline.name, model, samples, result, versus, wall)


async def compare_baselines(
    pipeline: Pipeline, dataset: Dataset, config: EvalConfig, architecture: EvalResult
) -> tuple[BaselineRow, ...]:
    """Single samples of each model of ``pipeline``, then equal-cost repeated sampling of the
    best of them, each evaluated on ``dataset`` with ``config`` (its own records file when
    ``config`` has one) and paired with the architecture's result."""
    parts = (dataset, config, item_scores(architecture))
    rows = [
        await _baseline(single_sample(pipeline, model), model, 1, parts)
        for model in models_of(pipeline)
    ]
    if not rows:
        return ()
    best = max(rows, key=lambda row: row.result.summary.score or 0.0)  # first of equals
    cost = architecture.summary.cost
    samples = equal_cost_samples((cost.calls + cost.cache_hits) / max(1, cost.items))
    code = architecture.metric == "code"
    voted = repeated_sampling(pipeline, best.model, samples, code=code)
    rows.append(await _baseline(voted, best.model, samples, parts))
    return tuple(rows)
