"""Static cost estimate: model calls and an upper bound on tokens per query.

For a concrete pipeline, each layer's ``estimate`` is applied in topological order to the
static shapes (item counts and token bounds) of its inputs. For a template, the estimate is
taken over assignments of its holes: exhaustively when the space is small, otherwise over a
seeded sample plus the all-lowest and all-highest corners (then ``exhaustive`` is False).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace

from archon.compiler.structure import HoleRef, holes, is_concrete, resolve
from archon.ir import Choice, FloatRange, IntRange, Pipeline, Value
from archon.layers.base import Flow, Gate
from archon.layers.registry import Registry

DEFAULT_QUERY_TOKENS = 512
_MAX_INT_VALUES = 12


@dataclass(frozen=True)
class ModelCost:
    """Calls and token bounds for one model."""

    model: str
    calls: int
    tokens_in: int
    tokens_out: int


@dataclass(frozen=True)
class CostEstimate:
    """Per-query static estimate of a concrete pipeline.

    ``calls`` and ``tokens`` bound what any query can spend. ``min_calls`` and
    ``min_tokens`` bound what a query that stops at the pipeline's first early-exit gate
    spends (the stages before it); without a gate they equal the maxima.
    """

    calls: int
    tokens: int
    per_model: tuple[ModelCost, ...]
    min_calls: int | None = None
    min_tokens: int | None = None

    @property
    def floor_calls(self) -> int:
        return self.calls if self.min_calls is None else self.min_calls

    @property
    def floor_tokens(self) -> int:
        return self.tokens if self.min_tokens is None else self.min_tokens

    def to_dict(self) -> dict[str, object]:
        return {
            "calls": self.calls,
            "tokens": self.tokens,
            "min_calls": self.floor_calls,
            "min_tokens": self.floor_tokens,
            "per_model": [m.__dict__ for m in self.per_model],
        }


@dataclass(frozen=True)
class CostRange:
    """Minimum and maximum of the estimate over a template's assignments."""

    min_calls: int
    max_calls: int
    min_tokens: int
    max_tokens: int
    configurations: int
    exhaustive: bool
    exit_calls: int | None = None
    """Fewest calls of a query that stops at the first early-exit gate (None: no gate)."""
    exit_tokens: int | None = None

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def estimate(
    pipeline: Pipeline, registry: Registry, query_tokens: int = DEFAULT_QUERY_TOKENS
) -> CostEstimate:
    """Estimate a concrete pipeline (holes must be filled: see ``structure.assign``)."""
    flows: dict[str, Flow] = {}
    per_model: dict[str, list[int]] = {}
    floor: tuple[int, int] | None = None  # calls and tokens before the first exit gate
    for node in pipeline.nodes:
        layer = registry.get(node.kind)
        params = layer.validate_params(node.arguments())
        inputs = [flows[i] for i in node.inputs if i in flows]
        result = layer.estimate(params, query_tokens, inputs)
        flows[node.id] = replace(result.output, payload=layer.produces)
        for call in result.calls:
            totals = per_model.setdefault(call.model, [0, 0, 0])
            totals[0] += call.calls
            totals[1] += call.tokens_in
            totals[2] += call.tokens_out
        if floor is None and issubclass(layer, Gate):
            floor = _totals(per_model)
    calls, tokens = _totals(per_model)
    models = tuple(ModelCost(m, c, i, o) for m, (c, i, o) in sorted(per_model.items()) if c)
    return CostEstimate(
        calls=calls,
        tokens=tokens,
        per_model=models,
        min_calls=None if floor is None else floor[0],
        min_tokens=None if floor is None else floor[1],
    )


def _totals(per_model: dict[str, list[int]]) -> tuple[int, int]:
    """Calls and tokens summed over the models."""
    calls = sum(c for c, _, _ in per_model.values())
    tokens = sum(i + o for c, i, o in per_model.values() if c)
    return calls, tokens


def estimate_range(
    pipeline: Pipeline,
    registry: Registry,
    query_tokens: int = DEFAULT_QUERY_TOKENS,
    max_configurations: int = 2000,
    seed: int = 0,
) -> CostRange:
    """Min/max of :func:`estimate` over the template's hole assignments."""
    if is_concrete(pipeline):
        one = estimate(pipeline, registry, query_tokens)
        return CostRange(
            one.calls, one.calls, one.tokens, one.tokens, 1, True, one.min_calls, one.min_tokens
        )
    refs = holes(pipeline)
    grids = [_grid(ref) for ref in refs]
    total = 1
    for grid in grids:
        total *= len(grid)
    exhaustive = total <= max_configurations
    if exhaustive:
        combos: Iterator[tuple[Value, ...]] = itertools.product(*grids)
    else:
        combos = _sampled(grids, max_configurations, seed)
    calls: list[int] = []
    tokens: list[int] = []
    exits: list[tuple[int, int]] = []
    for combo in combos:
        chosen = dict(zip((r.name for r in refs), combo, strict=True))
        concrete = resolve(pipeline, lambda ref, c=chosen: c[ref.name], registry)  # type: ignore[misc]
        result = estimate(concrete, registry, query_tokens)
        calls.append(result.calls)
        tokens.append(result.tokens)
        if result.min_calls is not None and result.min_tokens is not None:
            exits.append((result.min_calls, result.min_tokens))
    exit_calls = min((c for c, _ in exits), default=None)
    exit_tokens = min((t for _, t in exits), default=None)
    return CostRange(
        min(calls),
        max(calls),
        min(tokens),
        max(tokens),
        len(calls),
        exhaustive,
        exit_calls,
        exit_tokens,
    )


def _grid(ref: HoleRef) -> list[Value]:
    hole = ref.hole
    if isinstance(hole, Choice):
        return list(hole.options)
    if isinstance(hole, IntRange):
        values = hole.values()
        if len(values) <= _MAX_INT_VALUES:
            return list(values)
        return sorted({values[0], values[-1], hole.default})
    assert isinstance(hole, FloatRange)
    return sorted({hole.low, hole.high})


def _sampled(grids: list[list[Value]], count: int, seed: int) -> Iterator[tuple[Value, ...]]:
    rng = random.Random(seed)
    yield tuple(grid[0] for grid in grids)
    yield tuple(grid[-1] for grid in grids)
    for _ in range(count):
        yield tuple(rng.choice(grid) for grid in grids)
