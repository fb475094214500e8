"""Write a concrete pipeline as an original Archon config, layer by layer.

Archon runs every component of a layer on everything the previous layer wrote (see
:mod:`archon.interop.archon_schema`), so a node can sit in an Archon layer only if it reads
exactly the candidates (and tests) that the layers before it leave. The nodes are placed in
pipeline order: each joins the current layer when it must (it reads the same state as the
layer's other nodes, or the readers of its candidates read them together with theirs), or
starts a new layer. Nodes whose output nothing reads stay where they were written, next to
the other such nodes, so an imported config that wastes calls is written back as it was. A
pipeline Archon cannot express (a node reading only some of a layer's candidates, say) is an
:class:`ArchonConfigError` naming the node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from archon.interop.archon_schema import (
    MODEL_TYPES,
    OPTIONS,
    TYPES,
    ArchonConfigError,
    reads_candidates,
    reads_tests,
    writes_tests,
)
from archon.ir import Node, Pipeline, Value, is_hole

_PREFIXES = {prefix: model_type for model_type, prefix in MODEL_TYPES.items()}
_END = frozenset({"\x00output"})  # the group of the output node: read by "the answer"
Group = frozenset[str]


def export_config(pipeline: Pipeline) -> dict[str, Any]:
    """An Archon config for a concrete pipeline, with the layers Archon would run."""
    if pipeline.switches or any(is_hole(p.value) for n in pipeline.nodes for p in n.params):
        raise ArchonConfigError(
            f"pipeline '{pipeline.name}' has holes; assign them first (archon run --params)"
        )
    for node in pipeline.nodes:
        if node.kind not in TYPES:
            raise ArchonConfigError(f"layer kind '{node.kind}' has no Archon equivalent")
    layers = archon_layers(pipeline)
    return {
        "name": pipeline.name,
        "layers": [
            [c for node in layer for c in _components(node.kind, node.arguments())]
            for layer in layers
        ],
    }


@dataclass
class _Layer:
    """One Archon layer being filled: the state it reads and what its nodes write."""

    candidates_in: Group
    tests_in: Group
    nodes: list[Node] = field(default_factory=list)
    candidates_out: list[str] = field(default_factory=list)
    tests_out: list[str] = field(default_factory=list)

    def after(self) -> tuple[Group, Group]:
        """The state the next layer reads: what this one wrote, or what passed through."""
        return (
            frozenset(self.candidates_out) or self.candidates_in,
            frozenset(self.tests_out) or self.tests_in,
        )


@dataclass(frozen=True)
class _Groups:
    """For each writer, the set of writers its readers read together with it."""

    candidates: Mapping[str, Group]
    tests: Mapping[str, Group]
    kinds: Mapping[str, str]

    def of(self, node: Node) -> Group | None:
        """The group ``node`` writes into (None: nothing reads its output)."""
        groups = self.tests if writes_tests(node.kind) else self.candidates
        return groups.get(node.id)

    def split(self, node: Node) -> tuple[Group, Group]:
        """The node's candidate inputs and test inputs."""
        tests = frozenset(i for i in node.inputs if writes_tests(self.kinds.get(i, "")))
        return frozenset(node.inputs) - tests, tests


def archon_layers(pipeline: Pipeline) -> list[list[Node]]:
    """The pipeline's nodes as Archon layers, in order (see the module docstring)."""
    groups = _groups(pipeline)
    layers: list[_Layer] = []
    placed: dict[str, int] = {}
    for node in pipeline.nodes:
        current = layers[-1] if layers else None
        fresh = _Layer(*current.after()) if current else _Layer(frozenset(), frozenset())
        group = groups.of(node)
        started = {placed[m] for m in group or () if m in placed}
        join = current is not None and started <= {len(layers) - 1} and _fits(node, current, groups)
        start = not started and _fits(node, fresh, groups)
        if current is not None and join and (not start or _belongs_with(node, current, groups)):
            layer = current
        elif start:
            layers.append(fresh)
            layer = fresh
        else:
            raise _inexpressible(node, current, groups)
        layer.nodes.append(node)
        (layer.tests_out if writes_tests(node.kind) else layer.candidates_out).append(node.id)
        placed[node.id] = len(layers) - 1
    return [layer.nodes for layer in layers]


def _groups(pipeline: Pipeline) -> _Groups:
    kinds = {node.id: node.kind for node in pipeline.nodes}
    candidates: dict[str, Group] = {pipeline.output: _END | {pipeline.output}}
    tests: dict[str, Group] = {}
    probe = _Groups(candidates, tests, kinds)
    for node in pipeline.nodes:
        for found, inputs in zip((candidates, tests), probe.split(node), strict=True):
            for writer in inputs:
                if found.setdefault(writer, inputs) != inputs:
                    raise ArchonConfigError(
                        f"node '{writer}' is read together with different nodes by different"
                        f" readers ('{node.id}' among them); in Archon every component of a"
                        " layer reads all of the previous layer's output"
                    )
    if any(kinds.get(m) == "critique" and len(g - _END) > 1 for m, g in candidates.items()):
        raise ArchonConfigError(
            "a critique's candidates are read together with other nodes' candidates; an"
            " Archon critic keeps the candidates it critiques and adds nothing to them"
        )
    return probe


def _fits(node: Node, layer: _Layer, groups: _Groups) -> bool:
    """Whether ``node`` can run in ``layer``: it reads the layer's input, and what it writes
    goes to the same readers as what the layer's other nodes write."""
    candidates, tests = groups.split(node)
    if reads_candidates(node.kind) and candidates != layer.candidates_in:
        return False
    if reads_tests(node.kind) and tests != layer.tests_in:
        return False
    if not reads_candidates(node.kind) and not reads_tests(node.kind) and node.inputs:
        return False
    siblings = layer.tests_out if writes_tests(node.kind) else layer.candidates_out
    if node.kind == "critique" or any(groups.kinds[s] == "critique" for s in siblings):
        return not siblings  # an Archon critic writes critiques of its own, never candidates
    mine = groups.of(node)
    theirs = {groups.of(sibling) for sibling in _nodes(layer, siblings)}
    if mine is None or mine & _END:  # unread, or the answer: may sit with unread siblings
        return theirs <= {None, mine}
    return theirs <= {mine}


def _nodes(layer: _Layer, ids: Sequence[str]) -> list[Node]:
    wanted = set(ids)
    return [node for node in layer.nodes if node.id in wanted]


def _belongs_with(node: Node, layer: _Layer, groups: _Groups) -> bool:
    """Tie-break when ``node`` could join ``layer`` or start a new one: it joins only nodes
    whose output nobody reads either (a wasted layer stays one layer); otherwise it starts a
    layer of its own, as an independent root such as a unit-test writer usually is."""
    if groups.of(node) is not None:
        return False
    siblings = layer.tests_out if writes_tests(node.kind) else layer.candidates_out
    return bool(siblings) and all(groups.of(n) is None for n in _nodes(layer, siblings))


def _inexpressible(node: Node, layer: _Layer | None, groups: _Groups) -> ArchonConfigError:
    candidates, _ = groups.split(node)
    state = sorted(layer.after()[0]) if layer is not None else []
    return ArchonConfigError(
        f"node '{node.id}' ({node.kind}) reads {sorted(candidates) or 'only the query'}, but"
        f" at that point Archon's layers give it {state or 'no candidates'}: in Archon every"
        " component of a layer reads all of the previous layer's output, so this pipeline has"
        " no Archon form (read all of them, or move the node)"
    )


def _split_model(model: str) -> dict[str, str]:
    prefix, _, name = model.partition("/")
    if name and prefix in _PREFIXES:
        return {"model": name, "model_type": _PREFIXES[prefix]}
    return {"model": model}


def _components(kind: str, arguments: dict[str, Value]) -> list[dict[str, Any]]:
    archon_type = TYPES[kind]
    reverse = {param: key for key, param in OPTIONS[archon_type].items()}
    base: dict[str, Any] = {"type": archon_type}
    models: list[str] = []
    for param, value in arguments.items():
        if param == "models":
            models = [str(m) for m in value]  # type: ignore[union-attr]
        elif param == "model":
            base.update(_split_model(str(value)))
        elif param in reverse:
            base[reverse[param]] = list(value) if isinstance(value, tuple) else value
    if not models:
        return [base]
    # One Archon component per model, in the order of the ensemble.
    return [{**base, **_split_model(model)} for model in models]
