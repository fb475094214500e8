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


def not_positive(value: float | None, name: str, *, allow_zero: bool = False) -> str | None:
    """Why ``value`` is not a valid positive setting (``> 0``, or ``>= 0`` with
    ``allow_zero``), or None when it is (or is None: unset). NaN is never valid.

    The one positivity rule: the CLI, the search budget, the connection settings and the
    server budget each raise their own error with this message.
    """
    if value is None:
        return None
    if value != value or value < 0 or (value == 0 and not allow_zero):  # NaN included
        bound = "at least 0" if allow_zero else "positive"
        return f"{name} must be {bound}, not {value:g}"
    return None


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """A 'did you mean ...?' hint for a misspelt name, or None."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None


def _headline(diagnostic: Diagnostic) -> str:
    where = f"{diagnostic.span}: " if diagnostic.span is not None else ""
    return f"{where}{diagnostic.severity.value}[{diagnostic.code}]: {diagnostic.message}"


#: Source lines longer than this are shown as a window of this many characters around the
#: column, with "…" at a cut end: a whole 1 MB line under each of thousands of diagnostics
#: made the output (and its memory) quadratic in the line's length.
LINE_WINDOW = 120

#: At most this many diagnostics are rendered per file; the rest are one "… and N more" line.
MAX_RENDERED_PER_FILE = 50


def render(diagnostic: Diagnostic, source: SourceFile | None = None) -> str:
    """Render one diagnostic as text, with the source line and a caret when available."""
    lines = [_headline(diagnostic)]
    span = diagnostic.span
    if span is not None and source is not None and 1 <= span.line <= source.line_count:
        raw = source.line_text(span.line)
        end_col = span.end_col if span.end_line == span.line else len(raw) + 1
        end_col = min(end_col, len(raw) + 1)
        start, stop = _window(len(raw), span.col)
        text = _printable(raw[start:stop])
        col = span.col - start  # 1-based column inside the window
        if start > 0:
            text, col = "…" + text, col + 1
        if stop < len(raw):
            text += "…"
        width = max(1, min(end_col, stop + 1) - span.col)
        gutter = " " * len(str(span.line))
        lines.append(f"{gutter} |")
        lines.append(f"{span.line} | {text}")
        lines.append(f"{gutter} | {' ' * (col - 1)}{'^' * width}")
    for note in diagnostic.notes:
        lines.append(f"   = note: {note}")
    if diagnostic.hint:
        lines.append(f"   = help: {diagnostic.hint}")
    return "\n".join(lines)


def _window(length: int, col: int) -> tuple[int, int]:
    """The [start, stop) slice of a line of ``length`` characters shown around ``col``."""
    if length <= LINE_WINDOW:
        return 0, length
    index = max(0, min(col - 1, length))
    start = max(0, min(index - LINE_WINDOW // 2, length - LINE_WINDOW))
    return start, start + LINE_WINDOW


def _printable(text: str) -> str:
    """The source line as shown under a diagnostic: tabs as one space, control chars visible."""
    if text.isprintable():  # C speed for the usual line
        return text
    return "".join(" " if c == "\t" else (c if c.isprintable() else "\ufffd") for c in text)


def render_all(
    diagnostics: Sequence[Diagnostic],
    sources: dict[str, SourceFile],
    *,
    limit: int | None = MAX_RENDERED_PER_FILE,
) -> str:
    """Render many diagnostics, each with its own file's source line.

    At most ``limit`` diagnostics per file are rendered (None: all); the rest of each file
    are counted in one closing line, ``… and N more errors in FILE``.
    """
    parts: list[str] = []
    shown: dict[str, int] = {}
    skipped: dict[str, list[Diagnostic]] = {}
    for diagnostic in diagnostics:
        path = diagnostic.span.path if diagnostic.span is not None else ""
        if limit is not None and shown.get(path, 0) >= limit:
            skipped.setdefault(path, []).append(diagnostic)
            continue
        shown[path] = shown.get(path, 0) + 1
        source = sources.get(path) if diagnostic.span is not None else None
        parts.append(render(diagnostic, source))
    for path, rest in skipped.items():
        errors = sum(1 for d in rest if d.is_error)
        warnings = len(rest) - errors
        counts = [_plural(errors, "more error"), _plural(warnings, "more warning")]
        where = f" in {path}" if path else ""
        parts.append(f"… and {' and '.join(c for c in counts if c)}{where}")
    return "\n\n".join(parts)


def _plural(count: int, noun: str) -> str:
    if count == 0:
        return ""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def to_json(diagnostics: Sequence[Diagnostic]) -> str:
    """Diagnostics as a JSON array for tools (``--format json``)."""
    return json.dumps([d.model_dump(mode="json") for d in diagnostics], indent=2)
