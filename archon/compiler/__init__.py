"""The compiler: ``.pipe`` text or AST -> checked :class:`archon.ir.Pipeline`.

One contract for the three entry points: ``compile_file(path)``, ``compile_source(text,
path)`` and ``compile_ast(file)`` read the source and its imports, lower the AST to the IR,
run the passes of :mod:`archon.compiler.passes`, and return the checked
:class:`~archon.ir.Pipeline`; any error raises :class:`archon.errors.DiagnosticError` with
every problem found (it carries the sources for rendering). ``check_file`` never raises for
problems in the source: it returns a :class:`CompileResult` with the pipeline and every
diagnostic, warnings included (what ``archon check`` prints).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from archon.compiler.confine import ReadRefused, allowed_roots, check_readable
from archon.compiler.load import (
    Program,
    load_ast,
    load_file,
    load_source,
    read_text,
    resolve_relative,
    utf8_size,
)
from archon.compiler.lower import lower_program
from archon.compiler.passes import run_passes
from archon.dsl import ast
from archon.dsl.limits import DEPTH_CODE, SourceLimits, children, nesting_problem, total_problem
from archon.dsl.parser import paused_gc
from archon.errors import Diagnostic, DiagnosticError
from archon.ir import Pipeline
from archon.layers import default_registry
from archon.layers.registry import Registry
from archon.source import SourceFile

__all__ = [
    "CompileResult",
    "check_file",
    "compile_ast",
    "compile_file",
    "compile_program",
    "compile_source",
]


@dataclass(frozen=True)
class CompileResult:
    """The outcome of compiling one file: the pipeline (None for a library file or on errors),
    every diagnostic, and the sources they point into."""

    pipeline: Pipeline | None
    diagnostics: tuple[Diagnostic, ...] = ()
    sources: dict[str, SourceFile] = field(default_factory=dict)

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.is_error)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if not d.is_error)

    def raise_for_errors(self) -> CompileResult:
        if self.errors:
            raise DiagnosticError(self.diagnostics, self.sources)
        return self


def _project_reader(program: Program, limits: SourceLimits) -> Callable[[str, str], str]:
    """Reads ``file("...")`` paths relative to the file naming them, inside the project of
    the main file only (see :mod:`archon.compiler.confine`), each file once, and within what
    is left of ``limits.max_total_bytes`` (:func:`_prompt_files_problems` has reported a
    program over it before lowering starts; this guards files that grew since)."""
    roots = allowed_roots(program.main.path)
    read_already: dict[Path, str] = {}
    total = program.total_bytes

    def read(base: str, relative: str) -> str:
        nonlocal total
        real = check_readable(resolve_relative(base, relative), roots)
        if real not in read_already:
            if total + real.stat().st_size > limits.max_total_bytes:
                raise ReadRefused(f"the program is over {limits.max_total_bytes:,} bytes")
            text = read_text(str(real))
            total += utf8_size(text)
            read_already[real] = text
        return read_already[real]

    return read


def _file_calls(file: ast.File) -> Iterator[ast.Str]:
    """The path of every ``file("...")`` in ``file``, in text order (an explicit stack)."""
    stack: list[object] = list(reversed(file.items))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Call) and node.name.text == "file":
            first = node.args[0].value if node.args else None
            if isinstance(first, ast.Str):
                yield first
        stack.extend(reversed(list(children(node))))


def _prompt_files_problems(program: Program, limits: SourceLimits) -> list[Diagnostic]:
    """E109 at the first ``file("...")`` whose file brings the program over
    ``limits.max_total_bytes``: checked from the files' sizes before any is read. Paths that
    cannot be read are left to lowering, which reports them (E503)."""
    roots = allowed_roots(program.main.path)
    total = program.total_bytes
    seen: set[Path] = set()
    for loaded in (*program.imports, program.main):
        for path in _file_calls(loaded.file):
            try:
                real = check_readable(resolve_relative(loaded.path, path.value), roots)
                size = real.stat().st_size
            except OSError:
                continue
            if real in seen:
                continue
            seen.add(real)
            total += size
            problem = total_problem(total, path.value, limits, path.span)
            if problem is not None:
                return [problem]
    return []


def compile_program(
    program: Program,
    registry: Registry | None = None,
    pipeline: str | None = None,
    limits: SourceLimits | None = None,
) -> CompileResult:
    """Lower and check a loaded program; never raises for problems in the source.

    ``limits`` (default :class:`~archon.dsl.limits.SourceLimits`) bound the nesting depth
    and the number of nodes blocks and repeats may unroll to.
    """
    registry = registry or default_registry()
    limits = limits or SourceLimits()
    diagnostics = list(program.diagnostics)
    too_deep = [
        problem
        for loaded in (*program.imports, program.main)
        if (problem := nesting_problem(loaded.file, limits)) is not None
    ]
    if too_deep:
        # The walks below recurse per nesting level: stop before they can overflow.
        ordered = tuple(sorted([*diagnostics, *too_deep], key=Diagnostic.sort_key))
        return CompileResult(None, ordered, program.sources)
    too_large = _prompt_files_problems(program, limits)
    if too_large:
        ordered = tuple(sorted([*diagnostics, *too_large], key=Diagnostic.sort_key))
        return CompileResult(None, ordered, program.sources)
    try:
        with paused_gc():  # lowering builds many small frozen objects, like parsing
            lowered, lowering = lower_program(
                program, registry, _project_reader(program, limits), pipeline, limits=limits
            )
            diagnostics.extend(lowering)
            if lowered is not None and not any(d.is_error for d in diagnostics):
                diagnostics.extend(run_passes(lowered, registry))
    except RecursionError:
        # A last line of defence: every recursive walk should be bounded by ``limits``.
        lowered = None
        diagnostics.append(
            Diagnostic(
                code=DEPTH_CODE,
                message="the pipeline is nested too deeply to compile",
                hint="flatten nested repeats, blocks and lists",
            )
        )
    errors = any(d.is_error for d in diagnostics)
    ordered = tuple(sorted(diagnostics, key=Diagnostic.sort_key))
    return CompileResult(None if errors else lowered, ordered, program.sources)


def check_file(
    path: str | Path,
    registry: Registry | None = None,
    pipeline: str | None = None,
    limits: SourceLimits | None = None,
) -> CompileResult:
    """Compile a file and return every diagnostic (syntax errors included) without raising."""
    limits = limits or SourceLimits()
    try:
        program = load_file(path, limits)
    except DiagnosticError as error:
        return CompileResult(None, error.diagnostics, error.sources or _source_of(path, limits))
    return compile_program(program, registry, pipeline, limits)


def _source_of(path: str | Path, limits: SourceLimits) -> dict[str, SourceFile]:
    """The file's text for rendering diagnostics, unless it is unreadable or too large."""
    try:
        if Path(path).stat().st_size > limits.max_bytes:
            return {}
        return {str(path): SourceFile(str(path), Path(path).read_text(errors="replace"))}
    except OSError:
        return {}


def compile_file(
    path: str | Path,
    registry: Registry | None = None,
    pipeline: str | None = None,
    limits: SourceLimits | None = None,
) -> Pipeline:
    """Compile a ``.pipe`` file; returns the pipeline or raises (see :func:`check_file` for
    the warnings too). ``pipeline`` picks one in a file that defines several."""
    result = check_file(path, registry, pipeline, limits).raise_for_errors()
    if result.pipeline is None:
        raise DiagnosticError(
            [Diagnostic(code="E218", message=f"{path} defines no pipeline")], result.sources
        )
    return result.pipeline


def compile_source(
    text: str,
    path: str = "<string>",
    registry: Registry | None = None,
    limits: SourceLimits | None = None,
) -> Pipeline:
    """Compile ``.pipe`` text (imports relative to ``path``); returns the pipeline or raises."""
    source = SourceFile(path, text)
    try:
        program = load_source(source, limits=limits)
    except DiagnosticError as error:
        raise DiagnosticError(error.diagnostics, {path: source}) from None
    result = compile_program(program, registry, limits=limits).raise_for_errors()
    if result.pipeline is None:
        raise DiagnosticError(
            [Diagnostic(code="E218", message="source defines no pipeline")], result.sources
        )
    return result.pipeline


def compile_ast(
    file: ast.File, registry: Registry | None = None, base_dir: str | Path | None = None
) -> Pipeline:
    """Compile an AST built in Python (``archon.build``); ``base_dir`` anchors relative paths."""
    base = str(Path(base_dir or ".") / "<builder>.pipe")
    program = load_ast(file, base)
    result = compile_program(program, registry).raise_for_errors()
    if result.pipeline is None:
        raise DiagnosticError([Diagnostic(code="E218", message="the builder defines no pipeline")])
    return result.pipeline
