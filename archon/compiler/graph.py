"""The dataflow graph as a networkx view of the IR (derived on demand, never stored).

``to_digraph`` is the only place networkx is used; pictures come from ``to_dot``,
``to_mermaid`` and ``to_json``. The synthetic node ``query`` feeds nodes without inputs.
"""

from __future__ import annotations

import json
from typing import Any

import networkx as nx

from archon.ir import Pipeline, is_hole

QUERY = "query"


def to_digraph(pipeline: Pipeline) -> Any:
    """An ``nx.DiGraph`` with one vertex per node (attributes: kind, params) plus ``query``."""
    graph = nx.DiGraph(name=pipeline.name)
    graph.add_node(QUERY, kind="query", label="query")
    for node in pipeline.nodes:
        graph.add_node(node.id, kind=node.kind, label=_label(node.id, node.kind), node=node)
    for node in pipeline.nodes:
        if not node.inputs:
            graph.add_edge(QUERY, node.id)
        for source in node.inputs:
            graph.add_edge(source, node.id)
    return graph


def find_cycle(pipeline: Pipeline) -> list[str] | None:
    """Node ids along one cycle, or None."""
    try:
        edges = nx.find_cycle(to_digraph(pipeline))
    except nx.NetworkXNoCycle:
        return None
    return [source for source, _ in edges]


def topo_order(pipeline: Pipeline) -> list[str]:
    """Node ids in a topological order that keeps source order among independent nodes."""
    graph = to_digraph(pipeline)
    position = {node.id: index for index, node in enumerate(pipeline.nodes)}
    order = nx.lexicographical_topological_sort(graph, key=lambda n: position.get(n, -1))
    return [n for n in order if n != QUERY]


def ancestors_of_output(pipeline: Pipeline) -> set[str]:
    """Ids of the output node and every node it depends on."""
    graph = to_digraph(pipeline)
    if pipeline.output not in graph:
        return set()
    return set(nx.ancestors(graph, pipeline.output)) | {pipeline.output}


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
        if node.id == pipeline.output:
            style += ", penwidth=2"
        lines.append(f'  "{node.id}" [label="{_escape(text)}"{style}];')
    for source, target in to_digraph(pipeline).edges:
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
        lines.append(f'  {ids[node.id]}["{_escape(text)}"]')
    for source, target in to_digraph(pipeline).edges:
        arrow = "-.->" if pipeline.node(target).requires else "-->"
        lines.append(f"  {ids[source]} {arrow} {ids[target]}")
    return "\n".join(lines) + "\n"


def to_json(pipeline: Pipeline) -> str:
    """Nodes and edges as JSON (node-link form) for tools."""
    graph = to_digraph(pipeline)
    data = {
        "name": pipeline.name,
        "output": pipeline.output,
        "nodes": [
            {"id": n, "kind": graph.nodes[n]["kind"]}
            | (
                {"requires": [r.model_dump() for r in pipeline.node(n).requires]}
                if n != QUERY
                else {}
            )
            for n in graph.nodes
        ],
        "edges": [{"source": s, "target": t} for s, t in graph.edges],
    }
    return json.dumps(data, indent=2)


def _escape(text: str) -> str:
    return text.replace('"', '\\"')
