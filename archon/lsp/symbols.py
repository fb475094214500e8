"""Document symbols: imports, model aliases, prompts, blocks and pipelines, with the nodes
of each body (labelled or not) nested under it."""

from __future__ import annotations

from collections.abc import Callable

from lsprotocol import types

from archon.dsl import ast
from archon.dsl.printer import print_value
from archon.lsp.diagnostics import lsp_range
from archon.lsp.text import line_starts, line_text

Lines = Callable[[int], str]


def document_symbols(
    file: ast.File, text: str, encoding: str = "utf-16"
) -> list[types.DocumentSymbol]:
    """The outline of ``file`` (parsed from ``text``)."""
    starts = line_starts(text)

    def lines(line: int) -> str:
        return line_text(text, line, starts)

    symbols = []
    for item in file.items:
        if isinstance(item, ast.Import):
            symbols.append(
                _symbol(
                    f'import "{item.path.value}"',
                    types.SymbolKind.File,
                    item.span,
                    item.path.span,
                    lines,
                    encoding,
                )
            )
        elif isinstance(item, ast.ModelsBlock | ast.PromptsBlock):
            is_models = isinstance(item, ast.ModelsBlock)
            children = [
                _symbol(
                    b.name.text,
                    types.SymbolKind.Constant if is_models else types.SymbolKind.String,
                    b.span,
                    b.name.span,
                    lines,
                    encoding,
                    detail=_short(print_value(b.value)),
                )
                for b in item.entries
            ]
            symbols.append(
                _symbol(
                    "models" if is_models else "prompts",
                    types.SymbolKind.Namespace,
                    item.span,
                    item.span,
                    lines,
                    encoding,
                    children=children,
                )
            )
        elif isinstance(item, ast.BlockDef | ast.PipelineDef):
            is_block = isinstance(item, ast.BlockDef)
            symbols.append(
                _symbol(
                    item.name.text,
                    types.SymbolKind.Function if is_block else types.SymbolKind.Module,
                    item.span,
                    item.name.span,
                    lines,
                    encoding,
                    detail="block" if is_block else "pipeline",
                    children=_body(item.body, lines, encoding),
                )
            )
    return symbols


def _body(body: tuple[ast.Stmt, ...], lines: Lines, encoding: str) -> list[types.DocumentSymbol]:
    children = []
    for statement in body:
        if isinstance(statement, ast.LayerStmt):
            kind = statement.call.name.text
            name = statement.label.text if statement.label is not None else kind
            detail = ("optional " if statement.optional else "") + kind
            if statement.inputs:
                detail += " <- " + ", ".join(n.text for n in statement.inputs)
            selection = statement.label.span if statement.label else statement.call.name.span
            children.append(
                _symbol(
                    name,
                    types.SymbolKind.Method,
                    statement.span,
                    selection,
                    lines,
                    encoding,
                    detail=detail,
                )
            )
        elif isinstance(statement, ast.RepeatStmt):
            count = print_value(statement.count)
            name = statement.label.text if statement.label is not None else f"repeat {count}"
            children.append(
                _symbol(
                    name,
                    types.SymbolKind.Array,
                    statement.span,
                    statement.label.span if statement.label else statement.span,
                    lines,
                    encoding,
                    detail=f"repeat {count}",
                    children=_body(statement.body, lines, encoding),
                )
            )
        elif isinstance(statement, ast.BudgetStmt):
            detail = "  ".join(f"{e.name.text} <= {e.value.value}" for e in statement.entries)
            children.append(
                _symbol(
                    "budget",
                    types.SymbolKind.Property,
                    statement.span,
                    statement.span,
                    lines,
                    encoding,
                    detail=detail,
                )
            )
    return children


def _symbol(
    name: str,
    kind: types.SymbolKind,
    span: object,
    selection: object,
    lines: Lines,
    encoding: str,
    *,
    detail: str | None = None,
    children: list[types.DocumentSymbol] | None = None,
) -> types.DocumentSymbol:
    from archon.source import Span

    assert isinstance(span, Span) and isinstance(selection, Span)
    whole = lsp_range(span, lines, encoding)
    chosen = lsp_range(selection, lines, encoding)
    return types.DocumentSymbol(
        name=name,
        kind=kind,
        range=whole,
        selection_range=chosen,
        detail=detail,
        children=children or None,
    )


def _short(text: str, width: int = 60) -> str:
    first = text.splitlines()[0] if text else ""
    return first if len(first) <= width and "\n" not in text else first[:width] + "…"
