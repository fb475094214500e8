"""Bounds on ``.pipe`` input: file size, nesting depth and the size of the lowered graph.

A ``.pipe`` file is data that may come from anyone (a shared repository, a paper's
artifact), so reading one must not exhaust memory or the Python stack. The limits are
checked before the expensive step they protect: the size before a file is read, the nesting
depth before the (recursive) lowering and printing walk the tree, the node count while
blocks and repeats are unrolled. Every violation is an ordinary :class:`Diagnostic` with a
code, a position and a hint.

The defaults are far above any real pipeline; the CLI lets users raise them through
``ARCHON_MAX_PIPE_BYTES``, ``ARCHON_MAX_PIPE_DEPTH`` and ``ARCHON_MAX_PIPE_NODES``.

Integer literals are bounded too (:data:`MAX_INT_DIGITS`): in a ``.pipe`` file, in a
``--params`` file and in an Archon config. Python refuses to convert integers of thousands of
digits, and no setting needs more than a few; :func:`json_numbers` reads JSON with the same
bound and refuses numbers that overflow to infinity.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from archon.dsl import ast
from archon.errors import Diagnostic
from archon.source import Span

__all__ = [
    "MAX_INT_DIGITS",
    "NumberTooLarge",
    "SourceLimits",
    "children",
    "int_digits_problem",
    "json_numbers",
    "nesting_problem",
    "size_problem",
    "too_many_nodes",
    "total_problem",
]

SIZE_CODE = "E106"
DEPTH_CODE = "E104"
NODES_CODE = "E107"
DIGITS_CODE = "E108"
TOTAL_CODE = "E109"
TOTAL_VARIABLE = "ARCHON_MAX_PIPE_TOTAL_BYTES"

MAX_INT_DIGITS = 30
"""The most digits an integer literal or parameter value may have (underscores not counted)."""


@dataclass(frozen=True)
class SourceLimits:
    """How large a ``.pipe`` program may be.

    Attributes:
        max_bytes: size of one file (the main file and each import), in UTF-8 bytes.
        max_depth: nesting of blocks, repeats, calls and lists (a pipeline body is level 1).
        max_nodes: layer nodes after blocks and repeats are unrolled.
        max_total_bytes: the whole program, in bytes: the main file, every import and every
            ``file("...")`` prompt it reads, together.
    """

    max_bytes: int = 1_000_000
    max_depth: int = 64
    max_nodes: int = 20_000
    max_total_bytes: int = 2_000_000

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_depth", "max_nodes", "max_total_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"SourceLimits.{name} must be at least 1")


def size_problem(
    size: int, path: str, limits: SourceLimits, span: Span | None = None
) -> Diagnostic | None:
    """A diagnostic when a file of ``size`` bytes is over ``limits.max_bytes``, else None.

    ``span`` is where the file is named (an ``import``); None for the main file.
    """
    if size <= limits.max_bytes:
        return None
    what = "file" if span is None else f"'{path}'"
    where = span or Span(path=path, line=1, col=1, end_line=1, end_col=2)
    return Diagnostic(
        code=SIZE_CODE,
        message=f"{what} is too large: {size:,} bytes (the limit is {limits.max_bytes:,})",
        span=where,
        hint="split it into files joined with `import`, or raise the limit"
        " (the CLI reads ARCHON_MAX_PIPE_BYTES)",
    )


def total_problem(
    total: int, path: str, limits: SourceLimits, span: Span | None = None
) -> Diagnostic | None:
    """A diagnostic when reading ``path`` brings the program to ``total`` bytes, over
    ``limits.max_total_bytes``; else None.

    ``span`` is where the file is named (an ``import`` or a ``file("...")``); None for the
    main file.
    """
    if total <= limits.max_total_bytes:
        return None
    what = "the program is" if span is None else f"reading '{path}' brings the program to"
    where = span or Span(path=path, line=1, col=1, end_line=1, end_col=2)
    return Diagnostic(
        code=TOTAL_CODE,
        message=f"{what} {total:,} bytes, over the limit of {limits.max_total_bytes:,}"
        " for the main file, its imports and file() prompts together",
        span=where,
        hint=f"read fewer or smaller files, or raise the limit (the CLI reads {TOTAL_VARIABLE})",
    )


def nesting_problem(file: ast.File, limits: SourceLimits) -> Diagnostic | None:
    """A diagnostic at the first construct nested deeper than ``limits.max_depth``, else None.

    Walks the tree with an explicit stack, so any depth is safe to check.
    """
    stack: list[tuple[object, int]] = [(item, 0) for item in reversed(file.items)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, _CONTAINERS):
            depth += 1
            if depth > limits.max_depth:
                return _too_deep(node, file.path, limits)
        stack.extend((child, depth) for child in reversed(list(children(node))))
    return None


_CONTAINERS = (
    ast.PipelineDef,
    ast.BlockDef,
    ast.ModelsBlock,
    ast.PromptsBlock,
    ast.RepeatStmt,
    ast.Call,
    ast.ListValue,
)


def children(node: object) -> Iterator[object]:
    """The sub-nodes of one AST node (values, statements, arguments, bindings)."""
    if isinstance(node, ast.ModelsBlock | ast.PromptsBlock):
        yield from (binding.value for binding in node.entries)
    elif isinstance(node, ast.BlockDef):
        yield from (p.default for p in node.params if p.default is not None)
        yield from node.body
    elif isinstance(node, ast.PipelineDef):
        yield from node.body
    elif isinstance(node, ast.RepeatStmt):
        yield node.count
        yield from node.body
    elif isinstance(node, ast.LayerStmt):
        yield node.call
    elif isinstance(node, ast.Call):
        yield from (arg.value for arg in node.args)
    elif isinstance(node, ast.ListValue):
        yield from node.items


def _too_deep(node: object, path: str, limits: SourceLimits) -> Diagnostic:
    span = getattr(node, "span", None)
    if span is ast.NO_SPAN:  # built in Python: there is no position to point at
        span = None
    if span is not None:
        # Point at the opening of the construct, not at its whole (possibly huge) extent.
        span = span.model_copy(update={"end_line": span.line, "end_col": span.col + 1})
    return Diagnostic(
        code=DEPTH_CODE,
        message=f"nested too deeply (more than {limits.max_depth} levels)",
        span=span,
        hint="flatten it: name intermediate layers, or use a block; the CLI reads"
        " ARCHON_MAX_PIPE_DEPTH to raise the limit",
    )


def too_many_nodes(limits: SourceLimits, span: Span | None) -> Diagnostic:
    """The diagnostic for a pipeline whose unrolled graph exceeds ``limits.max_nodes``."""
    return Diagnostic(
        code=NODES_CODE,
        message=f"the pipeline unrolls to more than {limits.max_nodes:,} layer nodes",
        span=span,
        hint="repeat counts and block uses multiply; lower them (the CLI reads"
        " ARCHON_MAX_PIPE_NODES to raise the limit)",
    )


def _digit_count(text: str) -> int:
    return sum(c.isdigit() for c in text)


def int_digits_problem(text: str, span: Span | None) -> Diagnostic | None:
    """A diagnostic when the integer literal ``text`` has more than :data:`MAX_INT_DIGITS`
    digits, else None."""
    digits = _digit_count(text)
    if digits <= MAX_INT_DIGITS:
        return None
    return Diagnostic(
        code=DIGITS_CODE,
        message=f"integer literal is too long: {digits:,} digits (the limit is {MAX_INT_DIGITS})",
        span=span,
        hint="no setting needs a number this large; shorten it, or write a float such as 1e40",
    )


class NumberTooLarge(ValueError):
    """A JSON number with too many digits, or one that overflows to infinity."""


def _json_int(text: str) -> int:
    digits = _digit_count(text)
    if digits > MAX_INT_DIGITS:
        raise NumberTooLarge(
            f"an integer of {digits:,} digits ({text[:12]}...) is too long"
            f" (the limit is {MAX_INT_DIGITS} digits)"
        )
    return int(text)


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 24 else text[:12] + "..."
        raise NumberTooLarge(f"the number {shown} is too large to represent")
    return value


def _json_constant(name: str) -> float:
    raise NumberTooLarge(f"{name} is not a JSON number; write a finite number")


def json_numbers(text: str) -> Any:
    """``json.loads`` with bounded numbers: :class:`NumberTooLarge` for an integer of more
    than :data:`MAX_INT_DIGITS` digits, a float that overflows, ``Infinity`` or ``NaN``."""
    return json.loads(
        text, parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant
    )
