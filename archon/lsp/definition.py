"""Go-to-definition: an import -> the file; an alias, a prompt or a block -> where it is
defined (in this file or an imported one); a node after ``<-`` -> its label; a kind -> the
Python class that implements it; ``file("...")`` -> the file."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

from archon.layers.registry import Registry
from archon.lsp.analysis import Analysis, resolve_file
from archon.lsp.kinds import lookup
from archon.lsp.targets import target_at
from archon.lsp.text import line_starts, position_at


@dataclass(frozen=True)
class Place:
    """A place to jump to: a file and a 0-based range in code points (whole file: zeros)."""

    path: str
    line: int = 0
    col: int = 0
    end_line: int = 0
    end_col: int = 0
    in_current: bool = False
    """True when the range is in the current text (its columns need the current text)."""


def definition_at(
    text: str, offset: int, index: Analysis | None, registry: Registry
) -> Place | None:
    """Where the name under the cursor is defined, or None."""
    target = target_at(text, offset, index, registry)
    if target is None:
        return None
    if target.kind in ("model", "prompt", "block") and target.definition is not None:
        span = target.definition.name_span
        in_current = index is not None and span.path == index.path
        return Place(
            str(Path(span.path).resolve()),
            span.line - 1,
            span.col - 1,
            span.end_line - 1,
            span.end_col - 1,
            in_current=in_current,
        )
    if target.kind == "node" and target.node is not None and index is not None:
        starts = line_starts(text)
        line, col = position_at(target.node.start, starts)
        end_line, end_col = position_at(target.node.end, starts)
        return Place(index.path, line, col, end_line, end_col, in_current=True)
    if target.kind in ("import", "file") and index is not None:
        path = resolve_file(index.path, target.name)
        return Place(str(path)) if path.is_file() else None
    if target.kind == "kind":
        layer = lookup(registry, target.name)
        if layer is None:
            return None
        try:
            source = inspect.getsourcefile(layer)
            _, first = inspect.getsourcelines(layer)
        except (OSError, TypeError):
            return None
        return Place(source, first - 1, 0, first - 1, 0) if source else None
    return None
