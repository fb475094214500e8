"""Shared helpers for compiler tests: compile text, build IR by hand."""

from __future__ import annotations

from typing import Any

from archon.compiler import CompileResult, compile_program
from archon.compiler.load import load_source
from archon.ir import Node, Param, Pipeline
from archon.source import SourceFile

M = "openai/gpt-4o-mini"


def check(text: str, path: str = "test.pipe") -> CompileResult:
    """Compile ``text`` (no file on disk); every diagnostic, never raises for the source."""
    return compile_program(load_source(SourceFile(path, text)))


def compile_ok(text: str) -> Pipeline:
    """Compile text that must have no diagnostics at all."""
    result = check(text)
    assert result.diagnostics == (), [d.message for d in result.diagnostics]
    assert result.pipeline is not None
    return result.pipeline


def codes(text: str) -> list[str]:
    return [d.code for d in check(text).diagnostics]


def node(node_id: str, kind: str = "generate", inputs: tuple[str, ...] = (), **params: Any) -> Node:
    """A hand-built node; generate gets ``models`` and judges get ``model`` by default."""
    if kind in ("generate", "fuse"):
        params.setdefault("models", (M,))
    if kind in ("rank", "critique", "verify", "unit_test_generate"):
        params.setdefault("model", M)
    return Node(
        id=node_id,
        kind=kind,
        params=tuple(Param(name=k, value=v) for k, v in params.items()),
        inputs=inputs,
    )


def pipeline(*nodes: Node, output: str | None = None, **extra: Any) -> Pipeline:
    return Pipeline(name="p", nodes=nodes, output=output or nodes[-1].id, **extra)


def ids(p: Pipeline) -> list[str]:
    return [n.id for n in p.nodes]


def inputs(p: Pipeline) -> dict[str, tuple[str, ...]]:
    return {n.id: n.inputs for n in p.nodes}
