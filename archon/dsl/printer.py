"""The canonical text form of a ``.pipe`` file: ``print_file``, ``print_value``, ``format_source``.

Canonical form: two-space indentation, one statement or binding per line, ``name = value``
with spaces around ``=``, ``", "`` between arguments and list items, ``<- a, b`` for explicit
inputs, a budget on one line (``budget { calls <= 40  usd <= 0.05 }``), a layer statement
wider than 100 columns with one argument per line (and a trailing comma), ints from five
digits on grouped with ``_`` (``60_000``), floats printed with ``repr`` so they read back
exactly, and one empty line between top-level items. Single empty lines between statements
are kept when the source had them (and the nodes carry spans).

Comments (``File.comments``) are placed by position: a comment before a node is printed on its
own line above it, at its indentation; a comment after a node on the same line stays there as
``  # ...``; a comment before a closing ``}`` stays inside the block; anything left at the end
of the file stays at the end. No comment is ever dropped.

Guarantees (tested): ``parse(print_file(f)) == f`` for every printable ``f`` (equality is
modulo spans) and ``format_source`` is idempotent.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from archon.dsl import ast
from archon.dsl.limits import DEPTH_CODE, SourceLimits, nesting_problem
from archon.dsl.parser import parse
from archon.errors import Diagnostic, DiagnosticError
from archon.source import Span

__all__ = ["format_source", "print_file", "print_number", "print_string", "print_value"]

INDENT = "  "
MAX_WIDTH = 100  # a layer statement longer than this gets one argument per line
# Statements print recursively (a few frames per level); values print iteratively.
MAX_STATEMENT_DEPTH = 200
_GROUP_FROM = 10_000  # ints from here on print with "_" between groups of three digits
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")
# Words the grammar reads as keywords where a name could also stand.
_RESERVED_VALUES = frozenset({"true", "false"})  # refs, argument names, value calls
_RESERVED_STATEMENTS = frozenset({"budget", "repeat", "optional"})  # layer kinds, labels
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"})

Pos = tuple[int, int]


# --- values -------------------------------------------------------------------------------


def print_value(value: ast.Value) -> str:
    """The canonical text of one value, e.g. ``choice([a], [a, b])`` or ``"x\\n"``.

    Iterative (an explicit stack), so arbitrarily deep lists print without recursion.
    Raises ``ValueError`` for values the language cannot spell (a NaN, a malformed name).
    """
    out: list[str] = []
    stack: list[str | ast.Value] = [value]
    while stack:
        top = stack.pop()
        if isinstance(top, str):
            out.append(top)
        else:
            stack.extend(reversed(_pieces(top)))
    return "".join(out)


def _pieces(value: ast.Value) -> list[str | ast.Value]:
    """One level of a value: literal text interleaved with the sub-values still to print."""
    if isinstance(value, ast.Str):
        return [print_string(value.value)]
    if isinstance(value, ast.Bool):
        return ["true" if value.value else "false"]
    if isinstance(value, ast.Num):
        return [print_number(value.value)]
    if isinstance(value, ast.Ref):
        return [_name(value.name, _RESERVED_VALUES)]
    if isinstance(value, ast.ListValue):
        return ["[", *_joined(value.items), "]"]
    if isinstance(value, ast.Call):
        return [_name(value.name.text, _RESERVED_VALUES), "(", *_args_pieces(value.args), ")"]
    raise TypeError(f"not an AST value: {value!r}")


def _joined(values: Sequence[ast.Value]) -> list[str | ast.Value]:
    pieces: list[str | ast.Value] = []
    for index, item in enumerate(values):
        if index:
            pieces.append(", ")
        pieces.append(item)
    return pieces


def _args_pieces(args: Sequence[ast.Arg]) -> list[str | ast.Value]:
    pieces: list[str | ast.Value] = []
    for index, arg in enumerate(args):
        if index:
            pieces.append(", ")
        if arg.name is not None:
            pieces.append(f"{_name(arg.name.text, _RESERVED_VALUES)} = ")
        pieces.append(arg.value)
    return pieces


def print_string(text: str) -> str:
    """A string literal: triple-quoted when it spans lines and can be, else double-quoted."""
    if "\n" in text and '"""' not in text and not text.endswith('"'):
        return f'"""{text}"""'
    return '"' + text.translate(_ESCAPES) + '"'


def print_number(number: int | float) -> str:
    """An int as digits (``60_000`` from five digits on), a float with ``repr`` (exact round
    trip), infinities as ``1e999``."""
    if isinstance(number, bool):
        raise ValueError(f"a number cannot be a bool: {number!r}")
    if isinstance(number, int):
        return f"{number:_}" if abs(number) >= _GROUP_FROM else str(number)
    if math.isnan(number):
        raise ValueError("NaN cannot be written in a .pipe file")
    if math.isinf(number):
        return "1e999" if number > 0 else "-1e999"
    return repr(number)


def _name(text: str, reserved: frozenset[str] = frozenset()) -> str:
    """``text`` if it reads back as the same name here; else ``ValueError``."""
    if not _NAME.fullmatch(text):
        raise ValueError(f"{text!r} is not a valid name")
    if text in reserved:
        raise ValueError(f"{text!r} is a keyword here and cannot be used as a name")
    return text


# --- statements and items -----------------------------------------------------------------


def _kind_name(stmt: ast.LayerStmt) -> str:
    """The kind: after ``optional`` any name reads as the kind; after a label, all but
    ``repeat`` and ``optional``; at the start of a statement, no statement keyword."""
    if stmt.optional:
        reserved: frozenset[str] = frozenset()
    elif stmt.label is not None:
        reserved = _RESERVED_STATEMENTS - {"budget"}
    else:
        reserved = _RESERVED_STATEMENTS
    return _name(stmt.call.name.text, reserved)


def _arg_text(arg: ast.Arg) -> str:
    value = print_value(arg.value)
    if arg.name is None:
        return value
    return f"{_name(arg.name.text, _RESERVED_VALUES)} = {value}"


def _layer_text(stmt: ast.LayerStmt, indent: str) -> str:
    """One line when it fits in :data:`MAX_WIDTH`, else one argument per line::

    gen = generate(
      models = [small, judge],
      samples = int(1, 5),
    ) <- query
    """
    head = ""
    if stmt.label is not None:
        head = f"{_name(stmt.label.text, _RESERVED_STATEMENTS)} = "
    if stmt.optional:
        head += "optional "
    head += _kind_name(stmt) + "("
    tail = ")"
    if stmt.inputs:
        tail += " <- " + ", ".join(_name(n.text) for n in stmt.inputs)
    args = [_arg_text(a) for a in stmt.call.args]
    one_line = head + ", ".join(args) + tail
    if not args or _width(indent + one_line) <= MAX_WIDTH:
        return one_line
    inner = indent + INDENT
    return "\n".join([head, *(f"{inner}{arg}," for arg in args), indent + tail])


def _width(text: str) -> int:
    return max(len(line) for line in text.split("\n"))


def _entry_text(entry: ast.BudgetEntry) -> str:
    return f"{_name(entry.name.text)} <= {print_number(entry.value.value)}"


def _budget_inline(stmt: ast.BudgetStmt) -> str:
    if not stmt.entries:
        return "budget {}"
    return "budget { " + "  ".join(_entry_text(e) for e in stmt.entries) + " }"


def _binding_text(binding: ast.Binding) -> str:
    return f"{_name(binding.name.text)} = {print_value(binding.value)}"


def _param_text(param: ast.BlockParam) -> str:
    if param.default is None:
        return _name(param.name.text)
    return f"{_name(param.name.text)} = {print_value(param.default)}"


def _repeat_header(stmt: ast.RepeatStmt) -> str:
    label = f"{_name(stmt.label.text, _RESERVED_STATEMENTS)} = " if stmt.label is not None else ""
    return f"{label}repeat {print_value(stmt.count)}"


def _block_header(block: ast.BlockDef) -> str:
    params = ", ".join(_param_text(p) for p in block.params)
    return f"block {_name(block.name.text)}({params})"


# --- layout with comments -----------------------------------------------------------------


def _real(span: Span) -> Span | None:
    """The span if it points into a source file (builder-made nodes carry ``NO_SPAN``)."""
    if span.path != ast.NO_SPAN.path:  # cheap test first: pydantic equality is slow
        return span
    return None if span == ast.NO_SPAN else span


def _start(span: Span) -> Pos:
    return (span.line, span.col)


def _end(span: Span) -> Pos:
    return (span.end_line, span.end_col)


def _last_line(spans: Sequence[Span]) -> int | None:
    real = [s for s in (_real(x) for x in spans) if s is not None]
    return max(s.end_line for s in real) if real else None


@dataclass(frozen=True, slots=True)
class _Child:
    """One line-level element of a block: its span and how to print it."""

    span: Span
    emit: Callable[[str, Pos | None], None]


def _boundaries(children: Sequence[_Child], parent_end: Pos | None) -> list[Pos | None]:
    """For each child, where the next sibling with a real span starts (or the parent ends):
    its trailing comments stop there. One backward pass, so linear in the siblings."""
    result: list[Pos | None] = [None] * len(children)
    next_start = parent_end
    for index in range(len(children) - 1, -1, -1):
        result[index] = next_start
        real = _real(children[index].span)
        if real is not None:
            next_start = _start(real)
    return result


class _Printer:
    """Builds the output lines of one file; owns the queue of comments not yet printed."""

    def __init__(self, comments: Sequence[ast.Comment]) -> None:
        ordered = sorted(comments, key=lambda c: _start(c.span))
        self._pending: deque[ast.Comment] = deque(ordered)
        self._lines: list[str] = []
        self._last_line: int | None = None
        self._at_block_start = False
        self._force_blank = False

    # -- file ------------------------------------------------------------------------------

    def file(self, file: ast.File) -> str:
        children = [_Child(item.span, self._item_emitter(item)) for item in file.items]
        boundaries = _boundaries(children, None)
        for index, child in enumerate(children):
            self._force_blank = index > 0
            child.emit("", boundaries[index])
        self._force_blank = bool(self._lines)
        while self._pending:
            self._comment(self._pending.popleft(), "")
        return "\n".join(self._lines) + "\n" if self._lines else ""

    def _item_emitter(self, item: ast.Item) -> Callable[[str, Pos | None], None]:
        if isinstance(item, ast.Import):
            text = f"import {print_string(item.path.value)}"
            return lambda indent, boundary: self._leaf(item.span, text, indent, boundary)
        if isinstance(item, ast.ModelsBlock | ast.PromptsBlock):
            keyword = "models" if isinstance(item, ast.ModelsBlock) else "prompts"
            bindings = [_Child(b.span, self._binding_emitter(b)) for b in item.entries]
            header_line = item.span.line if _real(item.span) else None
            return lambda indent, boundary: self._block(
                item.span, keyword, header_line, bindings, indent, boundary
            )
        if isinstance(item, ast.BlockDef):
            header_line = _last_line([item.name.span, *(p.span for p in item.params)])
            body = self._stmt_children(item.body)
            return lambda indent, boundary: self._block(
                item.span, _block_header(item), header_line, body, indent, boundary
            )
        if isinstance(item, ast.PipelineDef):
            header = f"pipeline {_name(item.name.text)}"
            header_line = _last_line([item.name.span])
            body = self._stmt_children(item.body)
            return lambda indent, boundary: self._block(
                item.span, header, header_line, body, indent, boundary
            )
        raise TypeError(f"not a top-level item: {item!r}")

    # -- statements ------------------------------------------------------------------------

    def _stmt_children(self, body: Sequence[ast.Stmt]) -> list[_Child]:
        return [_Child(stmt.span, self._stmt_emitter(stmt)) for stmt in body]

    def _stmt_emitter(self, stmt: ast.Stmt) -> Callable[[str, Pos | None], None]:
        if isinstance(stmt, ast.LayerStmt):
            return lambda indent, boundary: self._leaf(
                stmt.span, _layer_text(stmt, indent), indent, boundary
            )
        if isinstance(stmt, ast.RepeatStmt):
            header_line = _last_line([stmt.count.span])
            body = self._stmt_children(stmt.body)
            return lambda indent, boundary: self._block(
                stmt.span, _repeat_header(stmt), header_line, body, indent, boundary
            )
        if isinstance(stmt, ast.BudgetStmt):
            return lambda indent, boundary: self._budget(stmt, indent, boundary)
        raise TypeError(f"not a statement: {stmt!r}")

    def _budget(self, stmt: ast.BudgetStmt, indent: str, boundary: Pos | None) -> None:
        """One line, unless comments sit between its entries: then one entry per line."""
        span = _real(stmt.span)
        if span is None or not self._has_comment_inside(span):
            self._leaf(stmt.span, _budget_inline(stmt), indent, boundary)
            return
        entries = [_Child(e.span, self._text_emitter(e.span, _entry_text(e))) for e in stmt.entries]
        self._block(stmt.span, "budget", span.line, entries, indent, boundary)

    def _binding_emitter(self, binding: ast.Binding) -> Callable[[str, Pos | None], None]:
        return self._text_emitter(binding.span, _binding_text(binding))

    def _text_emitter(self, span: Span, text: str) -> Callable[[str, Pos | None], None]:
        return lambda indent, boundary: self._leaf(span, text, indent, boundary)

    # -- layout primitives -----------------------------------------------------------------

    def _leaf(self, span: Span, text: str, indent: str, boundary: Pos | None) -> None:
        """A one-line node: comments before or inside it go above, one after it trails."""
        real = _real(span)
        if real is not None:
            self._comments_before(_start(real), indent)
            # Comments inside a node (a list split over lines) move above it, as one group.
            self._comments_before(_end(real), indent, anchor=real.line)
        self._separate(real.line if real else None)
        self._lines.append(indent + text + self._trailing(real, boundary))
        if real is not None:
            self._last_line = real.end_line

    def _block(
        self,
        span: Span,
        header: str,
        header_line: int | None,
        children: Sequence[_Child],
        indent: str,
        boundary: Pos | None,
    ) -> None:
        """``header { children }`` with comments kept inside, before and after it."""
        real = _real(span)
        if real is not None:
            self._comments_before(_start(real), indent)
        self._separate(real.line if real else None)
        first = next((_start(c.span) for c in children if _real(c.span)), None)
        header_comment = self._header_comment(real, header_line, first)
        inner = bool(children) or (real is not None and self._has_comment_inside(real))
        if not inner and not header_comment:
            self._lines.append(indent + header + " {}" + self._trailing(real, boundary))
            self._last_line = real.end_line if real else self._last_line
            return
        self._lines.append(f"{indent}{header} {{{header_comment}")
        self._at_block_start = True
        self._last_line = header_line if header_line is not None else self._last_line
        inner_indent = indent + INDENT
        end = _end(real) if real is not None else None
        for child, child_boundary in zip(children, _boundaries(children, end), strict=True):
            child.emit(inner_indent, child_boundary)
        if end is not None:
            self._comments_before(end, inner_indent)
        self._lines.append(indent + "}" + self._trailing(real, boundary))
        self._at_block_start = False
        self._last_line = real.end_line if real else self._last_line

    def _header_comment(self, span: Span | None, header_line: int | None, first: Pos | None) -> str:
        """The comment on the line that ends a block's header (where ``{`` goes), if any.

        Only the next pending comment qualifies, so comments never change order.
        """
        if span is None or header_line is None or not self._pending:
            return ""
        comment = self._pending[0]
        limit = first if first is not None else _end(span)
        position = _start(comment.span)
        if comment.span.line == header_line and _start(span) < position < limit:
            self._pending.popleft()
            return "  " + comment.text.rstrip()
        return ""

    def _has_comment_inside(self, span: Span) -> bool:
        for comment in self._pending:
            position = _start(comment.span)
            if position >= _end(span):
                return False
            if position > _start(span):
                return True
        return False

    def _comments_before(self, position: Pos, indent: str, anchor: int | None = None) -> None:
        """Print the pending comments that start before ``position``.

        ``anchor`` (a source line) stands in for each comment's own line when deciding on
        empty lines, for comments moved out of the node that starts on that line.
        """
        while self._pending and _start(self._pending[0].span) < position:
            self._comment(self._pending.popleft(), indent, anchor)

    def _trailing(self, span: Span | None, boundary: Pos | None) -> str:
        if span is None or not self._pending:
            return ""
        comment = self._pending[0]
        position = _start(comment.span)
        on_line = comment.span.line == span.end_line and position >= _end(span)
        if on_line and (boundary is None or position < boundary):
            self._pending.popleft()
            return "  " + comment.text.rstrip()
        return ""

    def _comment(self, comment: ast.Comment, indent: str, anchor: int | None = None) -> None:
        line = comment.span.line if anchor is None else anchor
        self._separate(line)
        self._lines.append(indent + comment.text.rstrip())
        # Comments moved out of a header come after it in the output: never step back.
        self._last_line = line if self._last_line is None else max(self._last_line, line)

    def _separate(self, line: int | None) -> None:
        """Emit one empty line when forced (between items) or when the source had one."""
        gap = line is not None and self._last_line is not None and line - self._last_line > 1
        if self._lines and not self._at_block_start and (self._force_blank or gap):
            self._lines.append("")
        self._force_blank = False
        self._at_block_start = False


# --- public entry points ------------------------------------------------------------------


def print_file(file: ast.File) -> str:
    """The canonical text of ``file``, with its comments (if any) placed by position.

    Raises ``ValueError`` for a tree no text can produce: a NaN, a malformed name, or a name
    the parser would read as a keyword where it stands (``repeat()`` as a statement,
    ``true`` as a reference).
    """
    too_deep = _too_deep_statement(file)
    if too_deep is not None:
        raise ValueError(
            f"statements nest more than {MAX_STATEMENT_DEPTH} levels deep ({too_deep.span})"
        )
    return _Printer(file.comments).file(file)


def format_source(text: str, path: str = "<string>", limits: SourceLimits | None = None) -> str:
    """Parse and print ``text`` canonically, keeping every comment (``archon fmt``).

    Raises :class:`archon.errors.DiagnosticError` when ``text`` does not parse, nests
    statements deeper than the printer can, or (with ``limits``) nests deeper than
    ``limits.max_depth``.
    """
    file = parse(text, path)
    problem = nesting_problem(file, limits) if limits is not None else None
    too_deep = _too_deep_statement(file)
    if problem is None and too_deep is not None:
        problem = Diagnostic(
            code=DEPTH_CODE,
            message=f"statements nest more than {MAX_STATEMENT_DEPTH} levels deep",
            span=too_deep.span.model_copy(
                update={"end_line": too_deep.span.line, "end_col": too_deep.span.col + 1}
            ),
            hint="flatten the nested repeats",
        )
    if problem is not None:
        raise DiagnosticError([problem])
    return print_file(file)


def _too_deep_statement(file: ast.File) -> ast.RepeatStmt | None:
    """The first repeat nested deeper than MAX_STATEMENT_DEPTH (an iterative walk)."""
    stack: list[tuple[ast.Stmt, int]] = []
    for item in file.items:
        if isinstance(item, ast.PipelineDef | ast.BlockDef):
            stack.extend((stmt, 1) for stmt in reversed(item.body))
    while stack:
        stmt, depth = stack.pop()
        if isinstance(stmt, ast.RepeatStmt):
            if depth >= MAX_STATEMENT_DEPTH:
                return stmt
            stack.extend((inner, depth + 1) for inner in reversed(stmt.body))
    return None
