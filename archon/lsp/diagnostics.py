"""Compiler diagnostics as LSP diagnostics: same code, range and hint as ``archon check``.

A problem inside an imported file is published on the main file's ``import`` line that brings
that file in (directly or through other imports), with the real location attached as related
information, so that a broken library shows up in every file that uses it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from lsprotocol import types

from archon.dsl import ast
from archon.errors import Diagnostic, Severity
from archon.lsp.analysis import Analysis
from archon.lsp.text import line_starts, line_text, span_range, to_client_col
from archon.source import Span

SOURCE = "archon"

UriOf = Callable[[str], str]
"""A file path (as diagnostics name it) -> its URI."""


def file_uri(path: str) -> str:
    from pathlib import Path

    return Path(os.path.abspath(path)).as_uri()


class _Lines:
    """Line texts of a file, for converting columns to the client's units."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = line_starts(text)

    def __call__(self, line: int) -> str:
        return line_text(self.text, line, self.starts)


def lsp_range(span: Span, lines: Callable[[int], str], encoding: str = "utf-16") -> types.Range:
    """A compiler span as an LSP range in the client's units."""
    line, col, end_line, end_col = span_range(span)
    if (end_line, end_col) < (line, col):
        end_line, end_col = line, col
    return types.Range(
        start=types.Position(line=line, character=to_client_col(lines(line), col, encoding)),
        end=types.Position(
            line=end_line, character=to_client_col(lines(end_line), end_col, encoding)
        ),
    )


def message_of(diagnostic: Diagnostic) -> str:
    """The message with the notes and the hint (``help: ...``) under it, as ``check`` prints."""
    parts = [diagnostic.message]
    parts.extend(f"note: {note}" for note in diagnostic.notes)
    if diagnostic.hint:
        parts.append(f"help: {diagnostic.hint}")
    return "\n".join(parts)


def _severity(diagnostic: Diagnostic) -> types.DiagnosticSeverity:
    if diagnostic.severity is Severity.WARNING:
        return types.DiagnosticSeverity.Warning
    return types.DiagnosticSeverity.Error


_START = types.Range(
    start=types.Position(line=0, character=0), end=types.Position(line=0, character=0)
)


def to_lsp(
    analysis: Analysis, uri_of: UriOf = file_uri, encoding: str = "utf-16"
) -> list[types.Diagnostic]:
    """The analysis's diagnostics for the main document."""
    main_lines = _Lines(analysis.text)
    other_lines: dict[str, _Lines] = {}
    imports = _import_spans(analysis.file)
    published = []
    for diagnostic in analysis.result.diagnostics:
        span = diagnostic.span
        related = None
        message = message_of(diagnostic)
        if span is None:
            where = _START
        elif span.path == analysis.path:
            where = lsp_range(span, main_lines, encoding)
        else:
            source = analysis.result.sources.get(span.path)
            lines = other_lines.setdefault(span.path, _Lines(source.text if source else ""))
            inner = lsp_range(span, lines, encoding)
            written = analysis.import_targets.get(span.path)
            anchor = imports.get(written) if written is not None else None
            where = lsp_range(anchor, main_lines, encoding) if anchor is not None else _START
            message = f"in {span.path}:{span.line}:{span.col}: {message}"
            related = [
                types.DiagnosticRelatedInformation(
                    location=types.Location(uri=uri_of(span.path), range=inner),
                    message=diagnostic.message,
                )
            ]
        published.append(
            types.Diagnostic(
                range=where,
                message=message,
                severity=_severity(diagnostic),
                code=diagnostic.code,
                source=SOURCE,
                related_information=related,
            )
        )
    return published


def _import_spans(file: ast.File | None) -> dict[str, Span]:
    if file is None:
        return {}
    spans: dict[str, Span] = {}
    for item in file.items:
        if isinstance(item, ast.Import):
            spans.setdefault(item.path.value, item.span)
    return spans
