"""A document, compiled as ``archon check`` compiles it, and the definitions it can see.

:func:`analyze` is ``check_file`` for text that is not saved yet: it builds the
:class:`~archon.source.SourceFile` from the editor's text and runs the same two steps,
:func:`archon.compiler.load.load_source` (parse, follow imports) and
:func:`archon.compiler.compile_program` (lower, run the passes). Imports are read from the
editor's unsaved buffers when they are open (``overlay``), from disk otherwise.

One difference with ``archon check``: a file that defines several pipelines is checked once
per pipeline (what ``archon check --pipeline NAME`` reports for each of them) rather than
stopping at E217, which asks the command line to choose one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from archon.compiler import CompileResult, compile_program
from archon.compiler.load import Program, load_source, read_text, resolve_relative
from archon.dsl import ast
from archon.dsl.limits import SourceLimits
from archon.dsl.printer import print_value
from archon.errors import Diagnostic, DiagnosticError
from archon.layers.registry import Registry
from archon.source import SourceFile, Span

DefinitionKind = Literal["model", "prompt", "block", "pipeline", "node"]


@dataclass(frozen=True)
class Definition:
    """A name a ``.pipe`` file defines: an alias, a prompt, a block, a pipeline or a node."""

    name: str
    kind: DefinitionKind
    name_span: Span
    span: Span
    """The whole definition (the binding, the block, the statement)."""
    detail: str
    """A one-line summary: the alias's target, the block's signature, the node's call."""
    value: ast.Value | None = None
    path: str = ""
    """The file that defines it."""


@dataclass(frozen=True)
class Analysis:
    """One compiled document: its AST (None when it does not parse), the compile result and
    the definitions visible from it (its own and its imports')."""

    path: str
    text: str
    file: ast.File | None
    result: CompileResult
    program: Program | None = None
    models: dict[str, Definition] = field(default_factory=dict)
    prompts: dict[str, Definition] = field(default_factory=dict)
    blocks: dict[str, Definition] = field(default_factory=dict)
    import_targets: dict[str, str] = field(default_factory=dict)
    """Each imported file's path (as diagnostics name it) -> the path written in the main
    file's import that brings it in (directly or through other imports)."""

    @property
    def ok(self) -> bool:
        return self.file is not None


def reader_with(overlay: Mapping[str, str]) -> Callable[[str], str]:
    """A file reader that prefers the editor's unsaved text (keyed by absolute path)."""

    def read(path: str) -> str:
        text = overlay.get(os.path.abspath(path))
        return text if text is not None else read_text(path)

    return read


def analyze(
    text: str,
    path: str,
    registry: Registry,
    limits: SourceLimits | None = None,
    overlay: Mapping[str, str] | None = None,
) -> Analysis:
    """Compile ``text`` as the file at ``path``; never raises for problems in the source."""
    limits = limits or SourceLimits()
    source = SourceFile(path, text)
    try:
        program = load_source(source, reader=reader_with(overlay or {}), limits=limits)
    except DiagnosticError as error:
        result = CompileResult(None, error.diagnostics, error.sources or {path: source})
        return Analysis(path, text, None, result)
    pipelines = [p.name.text for p in program.main.file.pipelines()]
    if len(pipelines) > 1:
        result = _each_pipeline(program, registry, pipelines, limits)
    else:
        result = compile_program(program, registry, None, limits)
    return _indexed(Analysis(path, text, program.main.file, result, program))


def _each_pipeline(
    program: Program, registry: Registry, names: list[str], limits: SourceLimits
) -> CompileResult:
    seen: set[str] = set()
    diagnostics: list[Diagnostic] = []
    for name in dict.fromkeys(names):
        for diagnostic in compile_program(program, registry, name, limits).diagnostics:
            key = diagnostic.model_dump_json()
            if key not in seen:
                seen.add(key)
                diagnostics.append(diagnostic)
    ordered = tuple(sorted(diagnostics, key=Diagnostic.sort_key))
    return CompileResult(None, ordered, program.sources)


def _indexed(analysis: Analysis) -> Analysis:
    program = analysis.program
    assert program is not None
    for loaded in (*program.imports, program.main):
        for item in loaded.file.items:
            if isinstance(item, ast.ModelsBlock | ast.PromptsBlock):
                table = analysis.models if isinstance(item, ast.ModelsBlock) else analysis.prompts
                kind: DefinitionKind = "model" if isinstance(item, ast.ModelsBlock) else "prompt"
                for binding in item.entries:
                    table.setdefault(
                        binding.name.text,
                        Definition(
                            binding.name.text,
                            kind,
                            binding.name.span,
                            binding.span,
                            print_value(binding.value),
                            binding.value,
                            loaded.path,
                        ),
                    )
            elif isinstance(item, ast.BlockDef):
                analysis.blocks.setdefault(
                    item.name.text,
                    Definition(
                        item.name.text,
                        "block",
                        item.name.span,
                        item.span,
                        block_signature(item),
                        path=loaded.path,
                    ),
                )
    analysis.import_targets.update(_import_targets(program))
    return analysis


def block_signature(block: ast.BlockDef) -> str:
    params = ", ".join(
        p.name.text + ("" if p.default is None else f" = {print_value(p.default)}")
        for p in block.params
    )
    return f"block {block.name.text}({params})"


def import_path(base: str, written: str) -> str:
    """The path an import names, as the loader shows it (relative to the main file)."""
    return os.path.normpath(resolve_relative(base, written))


def _import_targets(program: Program) -> dict[str, str]:
    by_path = {loaded.path: loaded for loaded in program.imports}
    targets: dict[str, str] = {}
    for item in program.main.file.items:
        if not isinstance(item, ast.Import):
            continue
        start = import_path(program.main.path, item.path.value)
        stack = [start]
        while stack:
            current = stack.pop()
            if current in targets:
                continue
            targets[current] = item.path.value
            loaded = by_path.get(current)
            if loaded is not None:
                stack.extend(
                    import_path(current, i.path.value)
                    for i in loaded.file.items
                    if isinstance(i, ast.Import)
                )
    return targets


# --- walking a file ----------------------------------------------------------------------------


def bodies(file: ast.File) -> Iterator[ast.PipelineDef | ast.BlockDef]:
    for item in file.items:
        if isinstance(item, ast.PipelineDef | ast.BlockDef):
            yield item


def statements(body: tuple[ast.Stmt, ...]) -> Iterator[ast.Stmt]:
    """Every statement of a body, repeat bodies included, in text order."""
    stack = list(reversed(body))
    while stack:
        statement = stack.pop()
        yield statement
        if isinstance(statement, ast.RepeatStmt):
            stack.extend(reversed(statement.body))


def calls(file: ast.File) -> Iterator[tuple[ast.Call, bool]]:
    """Every call of ``file``, with True for a statement's layer or block call."""
    stack: list[tuple[object, bool]] = [(item, False) for item in reversed(file.items)]
    while stack:
        node, is_statement = stack.pop()
        if isinstance(node, ast.Call):
            yield node, is_statement
            stack.extend((arg.value, False) for arg in reversed(node.args))
        elif isinstance(node, ast.LayerStmt):
            stack.append((node.call, True))
        elif isinstance(node, ast.RepeatStmt):
            stack.extend((s, False) for s in reversed(node.body))
            stack.append((node.count, False))
        elif isinstance(node, ast.PipelineDef | ast.BlockDef):
            stack.extend((s, False) for s in reversed(node.body))
            if isinstance(node, ast.BlockDef):
                stack.extend((p.default, False) for p in node.params if p.default is not None)
        elif isinstance(node, ast.ModelsBlock | ast.PromptsBlock):
            stack.extend((b.value, False) for b in reversed(node.entries))
        elif isinstance(node, ast.ListValue):
            stack.extend((v, False) for v in reversed(node.items))


def nodes_of(body: ast.PipelineDef | ast.BlockDef) -> list[Definition]:
    """The labelled statements of a body (repeats included), in text order."""
    found = []
    for statement in statements(body.body):
        if isinstance(statement, ast.LayerStmt | ast.RepeatStmt) and statement.label is not None:
            if isinstance(statement, ast.LayerStmt):
                detail = f"{statement.call.name.text}(…)"
            else:
                detail = f"repeat {print_value(statement.count)} {{…}}"
            found.append(
                Definition(
                    statement.label.text,
                    "node",
                    statement.label.span,
                    statement.span,
                    detail,
                    path=statement.span.path,
                )
            )
    return found


def enclosing_body(file: ast.File, line: int, col: int) -> ast.PipelineDef | ast.BlockDef | None:
    """The pipeline or block whose text holds 0-based (line, col)."""
    for body in bodies(file):
        span = body.span
        if (span.line - 1, span.col - 1) <= (line, col) <= (span.end_line - 1, span.end_col - 1):
            return body
    return None


def resolve_file(base: str, written: str) -> Path:
    """An imported or ``file("...")`` path as an absolute path."""
    return Path(resolve_relative(base, written)).resolve()
