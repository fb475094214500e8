"""The dataflow graph of the IR: order, cycles, reachability, pictures (derived on demand).

The analyses ``archon check`` needs (``find_cycle``, ``topo_order``, ``ancestors_of_output``)
and the pictures (``to_dot``, ``to_mermaid``, ``to_json``) are small pure functions over the
IR, so checking a file never imports networkx. ``to_digraph`` gives a networkx view for
analyses of your own; it is the only place networkx is used, imported when first called.
The synthetic node ``query`` feeds nodes without inputs.
"""

from __future__ import annotations

import heapq
import json
from typing import Any

from archon.ir import Pipeline, is_hole

QUERY = "query"


def successors(pipeline: Pipeline) -> dict[str, list[str]]:
    """Each vertex (``query``, then the nodes in order) and the nodes that read it, in order.

    An input naming no node becomes a vertex of its own, after the nodes.
    """
    readers: dict[str, list[str]] = {QUERY: []}
    readers.update((node.id, []) for node in pipeline.nodes)
    for node in pipeline.nodes:
        if not node.inputs:
            readers[QUERY].append(node.id)
        for source in node.inputs:
            readers.setdefault(source, []).append(node.id)
    return readers


def edges(pipeline: Pipeline) -> list[tuple[str, str]]:
    """Every ``(source, reader)`` edge, grouped by source in vertex order."""
    return [
        (source, reader) for source, readers in successors(pipeline).items() for reader in readers
    ]


def to_digraph(pipeline: Pipeline) -> Any:
    """An ``nx.DiGraph`` with one vertex per node (attributes: kind, params) plus ``query``."""
    import networkx as nx  # only here: checking and drawing never need it

    graph = nx.DiGraph(name=pipeline.name)
    graph.add_node(QUERY, kind="query", label="query")
    for node in pipeline.nodes:
        graph.add_node(node.id, kind=node.kind, label=_label(node.id, node.kind), node=node)
    graph.add_edges_from(edges(pipeline))
    return graph


def find_cycle(pipeline: Pipeline) -> list[str] | None:
    """Node ids along one cycle (in edge direction), or None.

    Iterative depth-first search, so a long chain cannot exhaust the recursion limit.
    """
    readers = successors(pipeline)
    on_path: dict[str, bool] = {}  # True while on the current path, False once finished
    for root in readers:
        if root in on_path:
            continue
        path = [root]
        pending = [iter(readers[root])]
        on_path[root] = True
        while pending:
            step = next(pending[-1], None)
            if step is None:
                on_path[path.pop()] = False
                pending.pop()
            elif on_path.get(step) is True:
                return path[path.index(step) :]
            elif step not in on_path:
                on_path[step] = True
                path.append(step)
                pending.append(iter(readers.get(step, ())))
    return None


def topo_order(pipeline: Pipeline) -> list[str]:
    """Node ids in a topological order that keeps source order among independent nodes.

    Raises ``ValueError`` when the graph has a cycle (see :func:`find_cycle`).
    """
    readers = successors(pipeline)
    position = {node.id: index for index, node in enumerate(pipeline.nodes)}
    waiting = dict.fromkeys(readers, 0)
    for targets in readers.values():
        for target in targets:
            waiting[target] += 1
    ready = [(position.get(v, -1), v) for v, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, vertex = heapq.heappop(ready)
        order.append(vertex)
        for target in readers.get(vertex, ()):
            waiting[target] -= 1
            if waiting[target] == 0:
                heapq.heappush(ready, (position.get(target, -1), target))
    if len(order) != len(waiting):
        raise ValueError(f"pipeline '{pipeline.name}' has a dataflow cycle")
    return [v for v in order if v != QUERY]


def ancestors_of_output(pipeline: Pipeline) -> set[str]:
    """Ids of the nodes that can give the answer (the output node and every early-exit
    gate) and every node they depend on (``query`` included when reached)."""
    inputs = {node.id: node.inputs for node in pipeline.nodes}
    if pipeline.output not in inputs:
        return set()
    gates = [node.id for node in pipeline.nodes if node.kind in GATE_KINDS]
    found = {pipeline.output, *gates}
    todo = list(found)
    while todo:
        vertex = todo.pop()
        if vertex in inputs and not inputs[vertex]:
            found.add(QUERY)
        for source in inputs.get(vertex, ()):
            if source not in found:
                found.add(source)
                todo.append(source)
    return found


GATE_KINDS = frozenset({"exit_if"})
"""Early-exit gates: drawn as diamonds (the nodes after one run only when it does not fire)."""


def _label(node_id: str, kind: str) -> str:
    return (
        kind
        if node_id.startswith(f"{kind}_") and node_id[len(kind) + 1 :].isdigit()
        else f"{node_id}: {kind}"
    )


def _params_text(pipeline: Pipeline, node_id: str) -> str:
    node = pipeline.node(node_id)
    parts = []
    for param in node.params:
        if param.name in ("prompt", "system_prompt"):
            parts.append(f"{param.name}=…")
        elif is_hole(param.value):
            parts.append(f"{param.name}=?")
        else:
            parts.append(f"{param.name}={_short(param.value)}")
    return ", ".join(parts)


def _short(value: object) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, tuple) else str(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _switch_note(pipeline: Pipeline, node_id: str) -> str:
    node = pipeline.node(node_id)
    notes = []
    for requirement in node.requires:
        switch = pipeline.switch(requirement.switch)
        notes.append(
            "optional"
            if switch.kind == "optional"
            else f"if {switch.name} ≥ {requirement.at_least}"
        )
    return "; ".join(notes)


def to_dot(pipeline: Pipeline) -> str:
    """Graphviz DOT text; optional/repeated nodes are dashed."""
    lines = [
        f'digraph "{pipeline.name}" {{',
        "  rankdir=TB;",
        '  node [shape=box, fontname="Helvetica"];',
    ]
    lines.append(f'  "{QUERY}" [shape=ellipse];')
    for node in pipeline.nodes:
        label = _label(node.id, node.kind)
        detail = _params_text(pipeline, node.id)
        note = _switch_note(pipeline, node.id)
        text = "\\n".join(x for x in (label, detail, f"[{note}]" if note else "") if x)
        style = ", style=dashed" if node.requires else ""
        if node.kind in GATE_KINDS:
            style += ", shape=diamond"
        if node.id == pipeline.output:
            style += ", penwidth=2"
        lines.append(f'  "{node.id}" [label="{_escape(text)}"{style}];')
    for source, target in edges(pipeline):
        lines.append(f'  "{source}" -> "{target}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(pipeline: Pipeline) -> str:
    """Mermaid flowchart text."""
    ids = {QUERY: "q"} | {node.id: f"n{i}" for i, node in enumerate(pipeline.nodes)}
    lines = ["flowchart TD", '  q(["query"])']
    for node in pipeline.nodes:
        note = _switch_note(pipeline, node.id)
        text = _label(node.id, node.kind) + (f" [{note}]" if note else "")
        if node.kind in GATE_KINDS:
            lines.append(f'  {ids[node.id]}{{"{_escape(text)}"}}')
        else:
            lines.append(f'  {ids[node.id]}["{_escape(text)}"]')
    for source, target in edges(pipeline):
        arrow = "-.->" if pipeline.node(target).requires else "-->"
        lines.append(f"  {ids[source]} {arrow} {ids[target]}")
    return "\n".join(lines) + "\n"


def to_json(pipeline: Pipeline) -> str:
    """Nodes and edges as JSON (node-link form) for tools."""
    data = {
        "name": pipeline.name,
        "output": pipeline.output,
        "nodes": [{"id": QUERY, "kind": "query"}]
        + [
            {"id": node.id, "kind": node.kind, "requires": [r.model_dump() for r in node.requires]}
            for node in pipeline.nodes
        ],
        "edges": [{"source": s, "target": t} for s, t in edges(pipeline)],
    }
    return json.dumps(data, indent=2)


def _escape(text: str) -> str:
    return text.replace('"', '\\"')
