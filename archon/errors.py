"""Errors and diagnostics.

A :class:`Diagnostic` is data (code, severity, message, span, hint); :func:`render` turns one
into the editor-parsable text form::

    examples/moa.pipe:7:10: error[E203]: rank() has no parameter 'topk'
       |
     7 |     rank(topk=3, model="gpt-4o-mini")
       |          ^^^^
       = help: did you mean 'top_k'?

Code families: ``E1xx`` syntax, ``E2xx`` names and kinds, ``E3xx`` parameter values and
holes, ``E4xx`` graph structure, ``E5xx`` files and imports, ``W…`` warnings.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from archon.source import SourceFile, Span


class ArchonError(Exception):
    """Root of every error archon raises on purpose."""


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class Diagnostic(BaseModel):
    """One problem found in a ``.pipe`` file (or in a pipeline built from Python)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    message: str
    span: Span | None = None
    hint: str | None = None
    severity: Severity = Severity.ERROR
    notes: tuple[str, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple[str, int, int, str]:
        if self.span is None:
            return ("", 0, 0, self.code)
        return (self.span.path, self.span.line, self.span.col, self.code)


class DiagnosticError(ArchonError):
    """Raised when parsing or compiling found problems; carries all of them, sorted."""

    def __init__(
        self, diagnostics: Iterable[Diagnostic], sources: dict[str, SourceFile] | None = None
    ) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(
            sorted(diagnostics, key=Diagnostic.sort_key)
        )
        self.sources: dict[str, SourceFile] = dict(sources or {})
        first = self.diagnostics[0] if self.diagnostics else None
        summary = "no diagnostics" if first is None else _headline(first)
        more = len(self.diagnostics) - 1
        super().__init__(summary + (f" (and {more} more)" if more > 0 else ""))

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.is_error)

    def render(self) -> str:
        """All diagnostics as text, each with its source line when the source is known."""
        return render_all(self.diagnostics, self.sources)


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """A 'did you mean ...?' hint for a misspelt name, or None."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None


def _headline(diagnostic: Diagnostic) -> str:
    where = f"{diagnostic.span}: " if diagnostic.span is not None else ""
    return f"{where}{diagnostic.severity.value}[{diagnostic.code}]: {diagnostic.message}"


def render(diagnostic: Diagnostic, source: SourceFile | None = None) -> str:
    """Render one diagnostic as text, with the source line and a caret when available."""
    lines = [_headline(diagnostic)]
    span = diagnostic.span
    if span is not None and source is not None and 1 <= span.line <= source.line_count:
        text = _printable(source.line_text(span.line))
        gutter = " " * len(str(span.line))
        end_col = span.end_col if span.end_line == span.line else len(text) + 1
        width = max(1, min(end_col, len(text) + 1) - span.col)
        lines.append(f"{gutter} |")
        lines.append(f"{span.line} | {text}")
        lines.append(f"{gutter} | {' ' * (span.col - 1)}{'^' * width}")
    for note in diagnostic.notes:
        lines.append(f"   = note: {note}")
    if diagnostic.hint:
        lines.append(f"   = help: {diagnostic.hint}")
    return "\n".join(lines)


def _printable(text: str) -> str:
    """The source line as shown under a diagnostic: tabs as one space, control chars visible."""
    return "".join(" " if c == "\t" else (c if c.isprintable() else "\ufffd") for c in text)


def render_all(diagnostics: Sequence[Diagnostic], sources: dict[str, SourceFile]) -> str:
    """Render many diagnostics, each with its own file's source line."""
    parts = [
        render(d, sources.get(d.span.path) if d.span is not None else None) for d in diagnostics
    ]
    return "\n\n".join(parts)


def to_json(diagnostics: Sequence[Diagnostic]) -> str:
    """Diagnostics as a JSON array for tools (``--format json``)."""
    return json.dumps([d.model_dump(mode="json") for d in diagnostics], indent=2)
