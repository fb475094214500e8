"""Graph views: networkx structure, topological order, DOT / Mermaid / JSON output."""

from __future__ import annotations

import json

from archon.compiler.graph import (
    QUERY,
    ancestors_of_output,
    find_cycle,
    to_digraph,
    to_dot,
    to_json,
    to_mermaid,
    topo_order,
)

from .helpers import M, compile_ok, node, pipeline

P = compile_ok(
    f"""models {{ m = "{M}" }}
    pipeline demo {{
      drafts = generate(models = [m])
      optional critique(model = m)
      more = generate(models = [m])
      fuse(models = [m]) <- critique_1, more
    }}"""
)
EDGES = {
    (QUERY, "drafts"),
    (QUERY, "more"),
    ("drafts", "critique_1"),
    ("critique_1", "fuse_1"),
    ("more", "fuse_1"),
}


def test_digraph_has_a_vertex_per_node_plus_the_query() -> None:
    graph = to_digraph(P)
    assert set(graph.nodes) == {QUERY, "drafts", "critique_1", "more", "fuse_1"}
    assert set(graph.edges) == EDGES
    assert graph.nodes["critique_1"]["kind"] == "critique"
    assert graph.nodes["fuse_1"]["node"] is P.node("fuse_1")


def test_topo_order_keeps_source_order_among_independent_nodes() -> None:
    assert topo_order(P) == ["drafts", "critique_1", "more", "fuse_1"]
    # Listed out of order by hand: b reads a, so a comes first anyway.
    hand = pipeline(node("b", "rank", ("a",)), node("a"), node("c"), output="b")
    assert topo_order(hand) == ["a", "b", "c"]


def test_cycles_and_ancestors() -> None:
    assert find_cycle(P) is None
    cyclic = pipeline(node("a", "fuse", ("b",)), node("b", "fuse", ("a",)))
    assert sorted(find_cycle(cyclic) or []) == ["a", "b"]
    unused = pipeline(node("a"), node("b"), node("r", "rank", ("b",)))
    assert ancestors_of_output(unused) == {"b", "r", QUERY}


def test_dot_has_every_node_and_edge_and_marks_optional_and_output() -> None:
    dot = to_dot(P)
    assert dot.startswith('digraph "demo" {')
    for source, target in EDGES:
        assert f'  "{source}" -> "{target}";' in dot
    lines = {
        line.split(" [", 1)[0].strip(): line for line in dot.splitlines() if " [label=" in line
    }
    assert "style=dashed" in lines['"critique_1"'] and "[optional]" in lines['"critique_1"']
    assert "penwidth=2" in lines['"fuse_1"'] and "style=dashed" not in lines['"fuse_1"']
    assert "drafts: generate" in lines['"drafts"']


def test_mermaid_has_every_node_and_edge() -> None:
    text = to_mermaid(P)
    assert text.startswith("flowchart TD\n")
    for line in (
        '  n0["drafts: generate"]',
        '  n1["critique [optional]"]',
        '  n2["more: generate"]',
        '  n3["fuse"]',
    ):
        assert line in text.splitlines()
    assert "  q --> n0" in text and "  q --> n2" in text
    assert "  n0 -.-> n1" in text  # the edge into an optional node is dotted
    assert "  n1 --> n3" in text and "  n2 --> n3" in text


def test_json_lists_nodes_and_edges() -> None:
    data = json.loads(to_json(P))
    assert data["name"] == "demo" and data["output"] == "fuse_1"
    assert {n["id"] for n in data["nodes"]} == {QUERY, "drafts", "critique_1", "more", "fuse_1"}
    assert {(e["source"], e["target"]) for e in data["edges"]} == EDGES
    critique = next(n for n in data["nodes"] if n["id"] == "critique_1")
    assert critique["requires"] == [{"switch": "critique_1.enabled", "at_least": 1}]
