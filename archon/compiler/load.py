"""Reading ``.pipe`` files from disk: the main file, its imports (cycles rejected) and
``file("...")`` prompt files. This is the compiler's only I/O; everything after it is pure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from archon.compiler.confine import ReadRefused, allowed_roots, check_readable
from archon.dsl import ast
from archon.dsl.limits import SourceLimits, size_problem, total_problem
from archon.dsl.parser import parse_source
from archon.errors import Diagnostic, DiagnosticError
from archon.source import SourceFile, Span

FileReader = Callable[[str], str]
"""Reads a file by path and returns its text; raises ``OSError`` when it cannot."""


@dataclass(frozen=True)
class LoadedFile:
    """One parsed file."""

    path: str
    source: SourceFile
    file: ast.File


@dataclass(frozen=True)
class Program:
    """A main file plus every file it imports (transitively), in dependency order."""

    main: LoadedFile
    imports: tuple[LoadedFile, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()
    sources: dict[str, SourceFile] = field(default_factory=dict)
    total_bytes: int = 0
    """UTF-8 bytes of the main file and its imports (``file()`` prompts are read later)."""


def read_text(path: str) -> str:
    """Default reader: UTF-8 text from disk (raises ``OSError`` or ``UnicodeDecodeError``)."""
    return Path(path).read_text(encoding="utf-8")


def decode(data: bytes, path: str) -> tuple[str, Diagnostic | None]:
    """Decode bytes as UTF-8; invalid bytes become U+FFFD and one diagnostic at the first."""
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as error:
        text = data.decode("utf-8", errors="replace")
        prefix = data[: error.start].decode("utf-8", errors="replace")
        line = prefix.count("\n") + 1
        col = len(prefix) - (prefix.rfind("\n") + 1) + 1
        span = Span(path=path, line=line, col=col, end_line=line, end_col=col + 1)
        diagnostic = Diagnostic(
            code="E100",
            message=f"file is not valid UTF-8 (byte 0x{data[error.start]:02x})",
            span=span,
            hint="save the file as UTF-8 text",
        )
        return text, diagnostic


def load_file(path: str | Path, limits: SourceLimits | None = None) -> Program:
    """Load ``path`` and its imports from disk. Raises DiagnosticError on syntax errors.

    A file over ``limits.max_bytes`` (default :class:`SourceLimits`) is refused before it is
    read.
    """
    path = str(path)
    limits = limits or SourceLimits()
    try:
        too_large = size_problem(Path(path).stat().st_size, path, limits)
        if too_large is not None:
            raise DiagnosticError([too_large])
        data = Path(path).read_bytes()
    except OSError as error:
        raise DiagnosticError(
            [Diagnostic(code="E500", message=f"cannot read {path}: {error.strerror or error}")]
        ) from error
    text, problem = decode(data, path)
    if problem is not None:
        raise DiagnosticError([problem])
    return load_source(SourceFile(path, text), reader=read_text, limits=limits)


def load_source(
    source: SourceFile, reader: FileReader = read_text, limits: SourceLimits | None = None
) -> Program:
    """Parse ``source`` and follow its imports through ``reader`` (each within ``limits``)."""
    limits = limits or SourceLimits()
    too_large = _text_too_large(source.text, source.path, limits)
    if too_large is not None:
        raise DiagnosticError([too_large])
    size = utf8_size(source.text)
    too_large = total_problem(size, source.path, limits)
    if too_large is not None:
        raise DiagnosticError([too_large])
    main = LoadedFile(source.path, source, parse_source(source))
    loader = _ImportLoader(reader, limits, allowed_roots(source.path), total=size)
    loader.visit(main, stack=((_key(main.path), main.path),))
    sources = {main.path: main.source} | {f.path: f.source for f in loader.loaded.values()}
    return Program(
        main=main,
        imports=tuple(loader.order),
        diagnostics=tuple(loader.diagnostics),
        sources=sources,
        total_bytes=loader.total,
    )


def load_ast(
    file: ast.File, path: str, reader: FileReader = read_text, limits: SourceLimits | None = None
) -> Program:
    """A program from an already-built AST (e.g. from ``archon.build``) at ``path``."""
    main = LoadedFile(path, SourceFile(path, ""), file)
    loader = _ImportLoader(reader, limits or SourceLimits(), allowed_roots(path))
    loader.visit(main, stack=((_key(path), path),))
    sources = {f.path: f.source for f in loader.loaded.values()}
    return Program(
        main=main,
        imports=tuple(loader.order),
        diagnostics=tuple(loader.diagnostics),
        sources=sources,
        total_bytes=loader.total,
    )


def utf8_size(text: str) -> int:
    """The size of ``text`` in UTF-8 bytes (without encoding ASCII-only text)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", errors="replace"))


def _text_too_large(
    text: str, path: str, limits: SourceLimits, span: Span | None = None
) -> Diagnostic | None:
    # A character is at most 4 UTF-8 bytes: only text near the limit needs encoding.
    if len(text) * 4 <= limits.max_bytes:
        return None
    return size_problem(len(text.encode("utf-8", errors="replace")), path, limits, span)


def resolve_relative(base_file: str, relative: str) -> str:
    """``relative`` interpreted against the directory of ``base_file``."""
    if base_file.startswith("<"):
        return str(Path(relative))
    return str(Path(base_file).parent / relative)


def _key(path: str) -> str:
    """The identity of a file: its absolute path (the same file imported two ways is one)."""
    return str(Path(path).resolve())


class _ImportLoader:
    """Follows imports depth first. Files are identified by absolute path, but each keeps the
    path it was reached by (relative to the main file when that one is relative), so
    diagnostics point at ``lib/models.pipe`` rather than at an absolute path."""

    def __init__(
        self, reader: FileReader, limits: SourceLimits, roots: Sequence[Path] = (), total: int = 0
    ) -> None:
        self.reader = reader
        self.limits = limits
        self.total = total  # bytes read so far, the main file included
        self.roots = tuple(roots)
        self.loaded: dict[str, LoadedFile] = {}
        self.order: list[LoadedFile] = []
        self.diagnostics: list[Diagnostic] = []

    def visit(self, current: LoadedFile, stack: tuple[tuple[str, str], ...]) -> None:
        for item in current.file.items:
            if isinstance(item, ast.Import):
                self._import(item, stack)

    def _import(self, item: ast.Import, stack: tuple[tuple[str, str], ...]) -> None:
        current_path = stack[-1][1]
        shown = os.path.normpath(resolve_relative(current_path, item.path.value))
        target = _key(shown)
        keys = [key for key, _ in stack]
        if target in keys:
            cycle = [path for _, path in stack[keys.index(target) :]]
            chain = " -> ".join([*cycle, cycle[0]])
            self.diagnostics.append(
                Diagnostic(
                    code="E501",
                    message=f"import cycle: {chain}",
                    span=item.span,
                    hint="move the shared definitions into a third file that both import",
                )
            )
            return
        if target in self.loaded:
            return
        try:
            check_readable(target, self.roots)
            size = Path(target).stat().st_size if Path(target).is_file() else 0
            too_large = size_problem(size, shown, self.limits, item.path.span) or total_problem(
                self.total + size, shown, self.limits, item.path.span
            )
            text = "" if too_large is not None else self.reader(target)
        except (OSError, UnicodeDecodeError) as error:
            self.diagnostics.append(
                Diagnostic(
                    code="E502",
                    message=f"cannot import '{item.path.value}': {_reason(error)}",
                    span=item.path.span,
                    hint=_refused_hint(error)
                    or f"import paths are relative to the importing file (looked for {shown})",
                )
            )
            return
        too_large = too_large or _text_too_large(text, shown, self.limits, item.path.span)
        if too_large is None:
            # The size read, which a file that grew since its stat may exceed.
            self.total += utf8_size(text)
            too_large = total_problem(self.total, shown, self.limits, item.path.span)
        if too_large is not None:
            self.diagnostics.append(too_large)
            return
        source = SourceFile(shown, text)
        try:
            loaded = LoadedFile(shown, source, parse_source(source))
        except DiagnosticError as error:
            self.diagnostics.extend(error.diagnostics)
            self.loaded[target] = LoadedFile(shown, source, ast.File(items=(), path=shown))
            return
        self.loaded[target] = loaded
        self.visit(loaded, (*stack, (target, shown)))
        self.order.append(loaded)


def _refused_hint(error: Exception) -> str | None:
    if isinstance(error, ReadRefused):
        return "imports and file() read regular files inside the project only"
    return None


def _reason(error: Exception) -> str:
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return "file is not valid UTF-8"
