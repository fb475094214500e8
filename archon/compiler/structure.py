"""Holes and structure: list a template's holes, fill them, and drop switched-off nodes.

This is the one code path shared by search (``resolve`` with an Optuna trial as chooser) and
deployment (``assign`` with stored params): define-by-run over the IR. Holes are visited in
node order; a node's switches are decided before its parameters, and the parameters of a node
that is switched off are never asked for (conditional search spaces).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from archon.errors import ArchonError, suggest
from archon.ir import Choice, FloatRange, Hole, IntRange, Node, Pipeline, Value, is_hole
from archon.layers.registry import Registry
from archon.source import Span


@dataclass(frozen=True)
class HoleRef:
    """One searchable dimension, named ``node_id.param`` (or ``id.enabled`` / ``id.count``)."""

    name: str
    hole: Hole
    kind: Literal["param", "optional", "repeat"]
    span: Span | None = None


Chooser = Callable[[HoleRef], Value]


class AssignmentError(ArchonError):
    """Stored parameters do not fit the template (unknown name or value out of range)."""


def holes(pipeline: Pipeline) -> tuple[HoleRef, ...]:
    """Every hole of the template in define-by-run order (all of them, active or not)."""
    found: list[HoleRef] = []
    seen: set[str] = set()
    for node in pipeline.nodes:
        for requirement in node.requires:
            if requirement.switch not in seen:
                seen.add(requirement.switch)
                found.append(_switch_ref(pipeline, requirement.switch))
        for param in node.params:
            if is_hole(param.value):
                found.append(
                    HoleRef(f"{node.id}.{param.name}", param.value, "param", param.value_span)
                )
    return tuple(found)


def _switch_ref(pipeline: Pipeline, name: str) -> HoleRef:
    switch = pipeline.switch(name)
    value = switch.value
    if not is_hole(value):
        value = Choice(options=(value,))
    return HoleRef(name, value, switch.kind, switch.span)


def is_concrete(pipeline: Pipeline) -> bool:
    """True when the pipeline has no holes and no switches (it can run as is)."""
    return not pipeline.switches and not any(
        is_hole(p.value) for n in pipeline.nodes for p in n.params
    )


def hole_size(hole: Hole) -> float:
    """Number of values a hole can take (``inf`` for a continuous float range)."""
    if isinstance(hole, Choice):
        return len(hole.options)
    if isinstance(hole, IntRange):
        return len(hole.values())
    if hole.step is not None:
        return math.floor((hole.high - hole.low) / hole.step + 1e-9) + 1
    return 1 if hole.low == hole.high else math.inf


def space_size(pipeline: Pipeline) -> float:
    """Upper bound on the number of distinct configurations (``inf`` if continuous)."""
    size = 1.0
    for ref in holes(pipeline):
        size *= hole_size(ref.hole)
    return size


def fits(hole: Hole, value: object) -> bool:
    """Whether ``value`` is one the hole can take."""
    if isinstance(hole, Choice):
        return any(_same(value, option) for option in hole.options)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(hole, IntRange):
        return (
            isinstance(value, int)
            and hole.low <= value <= hole.high
            and (value - hole.low) % max(1, hole.step) == 0
        )
    return hole.low <= value <= hole.high


def _same(a: object, b: object) -> bool:
    """Equality that keeps bools apart from numbers but lets 1 equal 1.0."""
    if isinstance(a, list):
        a = tuple(a)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def resolve(pipeline: Pipeline, choose: Chooser, registry: Registry) -> Pipeline:
    """A concrete pipeline: ``choose`` picks each active hole's value, in order."""
    decided: dict[str, Value] = {}
    kept: list[Node] = []
    for node in pipeline.nodes:
        if not _active(pipeline, node, decided, choose):
            continue
        params = tuple(
            p.model_copy(
                update={
                    "value": _choose(
                        HoleRef(f"{node.id}.{p.name}", p.value, "param", p.value_span), choose
                    )
                }
            )
            if is_hole(p.value)
            else p
            for p in node.params
        )
        kept.append(node.model_copy(update={"params": params, "requires": ()}))
    return _rewire(pipeline, kept, registry)


def _active(pipeline: Pipeline, node: Node, decided: dict[str, Value], choose: Chooser) -> bool:
    for requirement in node.requires:
        if requirement.switch not in decided:
            decided[requirement.switch] = _choose(_switch_ref(pipeline, requirement.switch), choose)
        value = decided[requirement.switch]
        if int(value) < requirement.at_least:  # type: ignore[arg-type]
            return False
    return True


def _choose(ref: HoleRef, choose: Chooser) -> Value:
    value = choose(ref)
    if isinstance(value, list):
        value = tuple(value)
    if not fits(ref.hole, value):
        raise AssignmentError(
            f"value {value!r} for '{ref.name}' is not one of {describe(ref.hole)}"
        )
    if isinstance(ref.hole, FloatRange) and isinstance(value, int):
        value = float(value)
    return value


def describe(hole: Hole) -> str:
    """Human form of a hole, as written in a .pipe file."""
    if isinstance(hole, Choice):
        return "choice(" + ", ".join(repr(o) for o in hole.options) + ")"
    extra = ""
    if hole.step not in (None, 1):
        extra += f", step = {hole.step}"
    if hole.log:
        extra += ", log = true"
    name = "int" if isinstance(hole, IntRange) else "float"
    return f"{name}({hole.low}, {hole.high}{extra})"


def _rewire(pipeline: Pipeline, kept: list[Node], registry: Registry) -> Pipeline:
    """Drop nodes that were switched off; their consumers read their same-typed inputs."""
    kept_ids = {n.id for n in kept}
    replacement: dict[str, tuple[str, ...]] = {}
    for node in pipeline.nodes:
        if node.id in kept_ids:
            continue
        produces = registry.get(node.kind).produces if node.kind in registry else None
        same_type = [
            i
            for i in node.inputs
            if produces is None or _produces(pipeline, i, registry) is produces
        ]
        replacement[node.id] = tuple(r for i in same_type for r in replacement.get(i, (i,)))
    rewired = [_rewired(n, replacement) for n in kept]
    output = pipeline.output
    if output in replacement:
        if not replacement[output]:
            raise AssignmentError(f"the output node '{output}' was switched off and has no input")
        output = replacement[output][-1]
    return pipeline.model_copy(update={"nodes": tuple(rewired), "output": output, "switches": ()})


def _rewired(node: Node, replacement: dict[str, tuple[str, ...]]) -> Node:
    """``node`` reading the replacements of its switched-off inputs (spans kept where valid)."""
    if not any(i in replacement for i in node.inputs):
        return node
    inputs = tuple(dict.fromkeys(r for i in node.inputs for r in replacement.get(i, (i,))))
    # A rewired input was not written by the user at that place: drop the input spans.
    return node.model_copy(update={"inputs": inputs, "input_spans": ()})


def _produces(pipeline: Pipeline, node_id: str, registry: Registry) -> type | None:
    kind = pipeline.node(node_id).kind
    return registry.get(kind).produces if kind in registry else None


def defaults_chooser(params: Mapping[str, Value] | None, defaulted: list[str]) -> Chooser:
    """A chooser reading ``params`` and falling back to each hole's default."""
    given = dict(params or {})

    def choose(ref: HoleRef) -> Value:
        if ref.name in given:
            return given[ref.name]
        defaulted.append(ref.name)
        return ref.hole.default

    return choose


def random_value(hole: Hole, rng: random.Random) -> Value:
    """A value drawn uniformly from those ``hole`` can take (a float range: uniformly)."""
    if isinstance(hole, Choice):
        return rng.choice(hole.options)
    if isinstance(hole, IntRange):
        return rng.choice(hole.values())
    if hole.step:
        steps = math.floor((hole.high - hole.low) / hole.step + 1e-9)
        return hole.low + rng.randint(0, steps) * hole.step
    return rng.uniform(hole.low, hole.high)


def random_chooser(seed: int) -> Chooser:
    """A chooser drawing every hole at random, reproducibly: a sampled assignment."""
    rng = random.Random(seed)
    return lambda ref: random_value(ref.hole, rng)


def assign(
    pipeline: Pipeline, params: Mapping[str, Value] | None, registry: Registry
) -> tuple[Pipeline, tuple[str, ...]]:
    """Fill holes from ``params`` (defaults for missing ones) and drop switched-off nodes.

    Returns the concrete pipeline and the names of holes that took their default.
    Raises :class:`AssignmentError` for unknown names or values a hole cannot take.
    """
    known = {ref.name for ref in holes(pipeline)}
    unknown = sorted(set(params or {}) - known)
    if unknown:
        hints = [
            f"'{name}'" + (f" ({suggest(name, known)})" if suggest(name, known) else "")
            for name in unknown
        ]
        raise AssignmentError(
            f"parameters not in pipeline '{pipeline.name}': {', '.join(hints)}"
            + ("" if known else "; the pipeline has no holes")
        )
    defaulted: list[str] = []
    concrete = resolve(pipeline, defaults_chooser(params, defaulted), registry)
    return concrete, tuple(defaulted)


def default_assignment(pipeline: Pipeline) -> dict[str, Value]:
    """Each hole's default value (what trial 0 of a search measures)."""
    return {ref.name: ref.hole.default for ref in holes(pipeline)}
