"""Scopes used while lowering: node outputs visible to `<-`, id namespaces, definitions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from archon.compiler.lower_values import ValueScope
from archon.dsl import ast
from archon.ir import ModelSpec, Requirement
from archon.source import Span
from archon.values import Payload


@dataclass(frozen=True)
class Output:
    """A node's output as seen by later statements: its id and payload type."""

    id: str
    produces: type[Payload] | None
    span: Span | None = None
    """Where a ``<-`` reference named this output (None when it was found implicitly)."""


@dataclass
class Scope:
    """Node labels visible to ``<-`` references; repeat copies chain to the outer scope."""

    labels: dict[str, Output] = field(default_factory=dict)
    parent: Scope | None = None

    def lookup(self, name: str) -> Output | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.labels:
                return scope.labels[name]
            scope = scope.parent
        return None

    def names(self) -> list[str]:
        names: list[str] = []
        scope: Scope | None = self
        while scope is not None:
            names.extend(scope.labels)
            scope = scope.parent
        return names


@dataclass
class Namespace:
    """Auto-id counters and taken names for one id namespace (a pipeline or block body)."""

    counters: dict[str, int] = field(default_factory=dict)
    taken: set[str] = field(default_factory=set)

    def auto_id(self, kind: str) -> str:
        while True:
            self.counters[kind] = self.counters.get(kind, 0) + 1
            candidate = f"{kind}_{self.counters[kind]}"
            if candidate not in self.taken:
                return candidate


@dataclass
class BodyContext:
    """Everything that varies while lowering one statement list."""

    scope: Scope
    values: ValueScope
    namespace: Namespace
    path: str
    prefix: str = ""
    suffix: str = ""
    requires: tuple[Requirement, ...] = ()
    blocks_open: tuple[str, ...] = ()
    top_level: bool = True

    def full_id(self, base: str) -> str:
        return f"{self.prefix}{base}{self.suffix}"


@dataclass
class Definitions:
    models: dict[str, ModelSpec] = field(default_factory=dict)
    prompts: dict[str, str] = field(default_factory=dict)
    blocks: dict[str, tuple[ast.BlockDef, str]] = field(default_factory=dict)
    spans: dict[str, Span] = field(default_factory=dict)


def labels_in(statements: Sequence[ast.Stmt]) -> set[str]:
    labels: set[str] = set()
    for statement in statements:
        if isinstance(statement, ast.LayerStmt | ast.RepeatStmt) and statement.label is not None:
            labels.add(statement.label.text)
        if isinstance(statement, ast.RepeatStmt):
            labels |= labels_in(statement.body)
    return labels
