"""Formatting through the code ``archon fmt`` uses (:func:`archon.dsl.printer.format_source`)."""

from __future__ import annotations

from lsprotocol import types

from archon.dsl.limits import SourceLimits
from archon.dsl.printer import format_source
from archon.errors import DiagnosticError
from archon.lsp.text import line_starts, line_text, to_client_col


def format_edits(
    text: str, path: str, limits: SourceLimits | None = None, encoding: str = "utf-16"
) -> list[types.TextEdit] | None:
    """One edit replacing the whole document with its canonical form; [] when it already is;
    None when the text does not parse (the diagnostics say why)."""
    try:
        formatted = format_source(text, path, limits or SourceLimits())
    except DiagnosticError:
        return None
    if formatted == text:
        return []
    starts = line_starts(text)
    last = len(starts) - 1
    end = types.Position(
        line=last, character=to_client_col(line_text(text, last, starts), 10**9, encoding)
    )
    whole = types.Range(start=types.Position(line=0, character=0), end=end)
    return [types.TextEdit(range=whole, new_text=formatted)]
