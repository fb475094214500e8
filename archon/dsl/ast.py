"""Surface syntax of ``.pipe`` files: frozen dataclasses with a span on every node.

Spans are excluded from equality (``field(compare=False)``), so two trees parsed from
differently formatted text compare equal when they mean the same thing. The compiler
lowers this tree to :class:`archon.ir.Pipeline`; nothing else should depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

from archon.source import Span

NO_SPAN = Span(path="<builder>", line=1, col=1, end_line=1, end_col=1)


@dataclass(frozen=True, slots=True)
class Name:
    text: str
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class Str:
    value: str
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class Num:
    value: int | float
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class Bool:
    value: bool
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class ListValue:
    items: tuple[Value, ...]
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class Ref:
    """A bare name in value position: a model alias, prompt name or block parameter."""

    name: str
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class Arg:
    """``name = value`` or a positional ``value`` (name is None)."""

    name: Name | None
    value: Value
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class Call:
    """``name(args)``: a layer or block call, or a value function (choice, int, file...)."""

    name: Name
    args: tuple[Arg, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False)


Value: TypeAlias = Str | Num | Bool | ListValue | Ref | Call


@dataclass(frozen=True, slots=True)
class LayerStmt:
    """``[label =] [optional] kind(args) [<- input, ...]``; ``inputs`` None means implicit."""

    call: Call
    label: Name | None = None
    optional: bool = False
    inputs: tuple[Name, ...] | None = None
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class RepeatStmt:
    """``[label =] repeat COUNT { body }``; COUNT is an int or an int hole."""

    count: Value
    body: tuple[Stmt, ...]
    label: Name | None = None
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class BudgetEntry:
    name: Name
    value: Num
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class BudgetStmt:
    entries: tuple[BudgetEntry, ...]
    span: Span = field(default=NO_SPAN, compare=False)


Stmt: TypeAlias = LayerStmt | RepeatStmt | BudgetStmt


@dataclass(frozen=True, slots=True)
class Binding:
    """``name = value`` inside ``models { }`` or ``prompts { }``."""

    name: Name
    value: Value
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class ModelsBlock:
    entries: tuple[Binding, ...]
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class PromptsBlock:
    entries: tuple[Binding, ...]
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class BlockParam:
    name: Name
    default: Value | None = None
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class BlockDef:
    """``block name(params) { body }``: a reusable group of statements."""

    name: Name
    params: tuple[BlockParam, ...]
    body: tuple[Stmt, ...]
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class PipelineDef:
    name: Name
    body: tuple[Stmt, ...]
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class Import:
    path: Str
    span: Span = field(default=NO_SPAN, compare=False)


Item: TypeAlias = Import | ModelsBlock | PromptsBlock | BlockDef | PipelineDef


@dataclass(frozen=True, slots=True)
class Comment:
    """A ``# comment``, kept so that ``archon fmt`` does not lose it."""

    text: str
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class File:
    """A parsed ``.pipe`` file."""

    items: tuple[Item, ...]
    path: str = field(default="<builder>", compare=False)
    comments: tuple[Comment, ...] = field(default=(), compare=False)

    def pipelines(self) -> tuple[PipelineDef, ...]:
        return tuple(i for i in self.items if isinstance(i, PipelineDef))
