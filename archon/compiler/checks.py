"""Graph checks on the IR: ids, dangling inputs, cycles, port types, structure, reachability.

Each check is a pure function ``(Pipeline, Registry) -> list[Diagnostic]``. They also guard
pipelines built without the DSL (from Python or imported configs), which is why checks that
the language makes impossible (cycles, dangling ids) still exist.
"""

from __future__ import annotations

from collections import Counter

from archon.compiler.graph import ancestors_of_output, find_cycle
from archon.errors import Diagnostic, Severity, suggest
from archon.ir import Choice, IntRange, Node, Pipeline, is_hole
from archon.layers.base import Gate
from archon.layers.registry import Registry
from archon.values import Candidates, Payload


def check_ids(pipeline: Pipeline, registry: Registry) -> list[Diagnostic]:
    """Duplicate node ids, inputs naming no node, an output naming no node."""
    diagnostics = []
    counts = Counter(node.id for node in pipeline.nodes)
    for node in pipeline.nodes:
        if counts[node.id] > 1:
            diagnostics.append(
                Diagnostic(
                    code="E204", message=f"node id '{node.id}' is used twice", span=node.span
                )
            )
            counts[node.id] = 1  # report each duplicate once
    ids = {node.id for node in pipeline.nodes}
    for node in pipeline.nodes:
        for source in node.inputs:
            if source not in ids:
                diagnostics.append(
                    Diagnostic(
                        code="E401",
                        message=f"node '{node.id}' reads unknown node '{source}'",
                        span=node.span,
                        hint=suggest(source, ids),
                    )
                )
    if pipeline.output not in ids:
        diagnostics.append(
            Diagnostic(
                code="E406",
                message=f"output node '{pipeline.output}' does not exist",
                span=pipeline.span,
                hint=suggest(pipeline.output, ids),
            )
        )
    return diagnostics


def check_cycles(pipeline: Pipeline, registry: Registry) -> list[Diagnostic]:
    """A dataflow cycle can never run."""
    cycle = find_cycle(pipeline)
    if cycle is None:
        return []
    first = pipeline.node(cycle[0]) if cycle[0] in {n.id for n in pipeline.nodes} else None
    return [
        Diagnostic(
            code="E407",
            message="dataflow cycle: " + " -> ".join([*cycle, cycle[0]]),
            span=first.span if first else pipeline.span,
            hint="a layer cannot depend on its own output; remove one of these edges",
        )
    ]


def check_ports(pipeline: Pipeline, registry: Registry) -> list[Diagnostic]:
    """Each input's payload type is consumed by the reader; every consumed type is supplied."""
    diagnostics = []
    nodes = {node.id: node for node in pipeline.nodes}
    for node in pipeline.nodes:
        if node.kind not in registry:
            continue
        layer = registry.get(node.kind)
        supplied = set()
        for index, source in enumerate(node.inputs):
            if source not in nodes or nodes[source].kind not in registry:
                continue
            produced = registry.get(nodes[source].kind).produces
            supplied.add(produced)
            if produced not in layer.consumes:
                takes = ", ".join(t.__name__ for t in layer.consumes) or "no inputs"
                diagnostics.append(
                    Diagnostic(
                        code="E404",
                        message=f"{node.kind}() cannot read {produced.__name__} from '{source}'"
                        f" (it takes {takes})",
                        span=node.input_span(index),
                        hint=f"remove '{source}' from its inputs",
                    )
                )
        for payload in layer.consumes:
            if payload in layer.optional_inputs:
                continue
            if payload not in supplied and all(i in nodes for i in node.inputs):
                diagnostics.append(
                    Diagnostic(
                        code="E405",
                        message=f"{node.kind}() '{node.id}' needs {payload.__name__} input"
                        " but none of its inputs produces it",
                        span=node.span,
                        hint=_producer_hint(pipeline, registry, node, payload),
                    )
                )
    return diagnostics


def _producer_hint(
    pipeline: Pipeline, registry: Registry, node: Node, payload: type[Payload]
) -> str:
    """Suggest an earlier node that produces ``payload`` (the language reads only backwards)."""
    earlier = []
    for other in pipeline.nodes:
        if other.id == node.id:
            break
        if other.kind in registry and registry.get(other.kind).produces is payload:
            earlier.append(other.id)
    if earlier:
        return f"add '{earlier[-1]}' to its inputs: `<- {', '.join([*node.inputs, earlier[-1]])}`"
    return f"add a layer that produces {payload.__name__} before it and list it after `<-`"


def check_output(pipeline: Pipeline, registry: Registry) -> list[Diagnostic]:
    """The pipeline's answer must be candidates."""
    if pipeline.output not in {n.id for n in pipeline.nodes}:
        return []
    node = pipeline.node(pipeline.output)
    if node.kind in registry and registry.get(node.kind).produces is not Candidates:
        produced = registry.get(node.kind).produces.__name__
        return [
            Diagnostic(
                code="E406",
                message=f"the pipeline ends with {node.kind}(), which produces {produced},"
                " not candidate answers",
                span=node.span,
                hint="end the pipeline with a layer that produces candidates (e.g. rank or fuse)",
            )
        ]
    return []


def check_structure(pipeline: Pipeline, registry: Registry) -> list[Diagnostic]:
    """Switches exist and are well-formed; a node that may be switched off can pass through."""
    diagnostics: list[Diagnostic] = []
    names = {switch.name for switch in pipeline.switches}
    for switch in pipeline.switches:
        value = switch.value
        valid = (
            isinstance(value, IntRange)
            or (isinstance(value, Choice) and all(isinstance(o, bool | int) for o in value.options))
            or (not is_hole(value) and isinstance(value, bool | int))
        )
        if not valid:
            diagnostics.append(
                Diagnostic(
                    code="E313", message=f"switch '{switch.name}' must count", span=switch.span
                )
            )
    consumers: dict[str, list[Node]] = {}
    for node in pipeline.nodes:
        for source in node.inputs:
            consumers.setdefault(source, []).append(node)
        for requirement in node.requires:
            if requirement.switch not in names:
                diagnostics.append(
                    Diagnostic(
                        code="E410",
                        message=f"node '{node.id}' requires unknown switch '{requirement.switch}'",
                        span=node.span,
                    )
                )
    for node in pipeline.nodes:
        if node.requires and node.kind in registry:
            diagnostics.extend(_pass_through(pipeline, registry, node, consumers.get(node.id, [])))
    return diagnostics


def _pass_through(
    pipeline: Pipeline, registry: Registry, node: Node, readers: list[Node]
) -> list[Diagnostic]:
    layer = registry.get(node.kind)
    if layer.produces in layer.consumes:
        return []
    mine = set(node.requires)
    exposed = [r.id for r in readers if not mine <= set(r.requires)]
    if node.id == pipeline.output or exposed:
        return [
            Diagnostic(
                code="E408",
                message=f"{node.kind}() can be switched off, but then "
                + (f"'{exposed[0]}'" if exposed else "the pipeline")
                + " has nothing to read",
                span=node.span,
                hint="only layers that pass candidates through (critique, rank, fuse, verify, vote)"
                " can be optional or repeated on their own",
            )
        ]
    return []


def check_unused(pipeline: Pipeline, registry: Registry) -> list[Diagnostic]:
    """Warn about nodes whose output never reaches the pipeline's output."""
    used = ancestors_of_output(pipeline)
    if not used:
        return []
    return [
        Diagnostic(
            code="W401",
            severity=Severity.WARNING,
            message=f"node '{node.id}' does not contribute to the output",
            span=node.span,
            hint=f"connect it (`<- {node.id}`) or remove it",
        )
        for node in pipeline.nodes
        if node.id not in used
    ]


def check_gates(pipeline: Pipeline, registry: Registry) -> list[Diagnostic]:
    """Warn about an early-exit gate with no later stage: it can skip nothing."""
    if not pipeline.nodes:
        return []
    last = pipeline.nodes[-1]
    if last.kind not in registry or not issubclass(registry.get(last.kind), Gate):
        return []
    return [
        Diagnostic(
            code="W402",
            severity=Severity.WARNING,
            message=f"{last.kind}() '{last.id}' is the last node: no later stage to skip",
            span=last.span,
            hint="write the stages it should skip after it, or remove it",
        )
    ]
