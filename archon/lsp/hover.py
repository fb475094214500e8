"""Hover: a kind's documentation and parameters, a parameter's type and default, a model
alias's target, a prompt's text, a block's signature, a node's call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from archon.dsl import ast
from archon.layers.registry import Registry
from archon.lsp.analysis import Analysis, resolve_file
from archon.lsp.kinds import (
    BUDGET_NAMES,
    KEYWORDS,
    VALUE_FUNCTIONS,
    kind_markdown,
    lookup,
    param,
    param_markdown,
    summary,
)
from archon.lsp.targets import Target, target_at
from archon.lsp.text import line_starts, line_text, position_at, tokenize

#: A prompt shown on hover is cut after this many lines.
MAX_PROMPT_LINES = 40


@dataclass(frozen=True)
class HoverText:
    markdown: str
    start: int
    """Offsets of the hovered token in the text."""
    end: int


def hover_at(
    text: str, offset: int, index: Analysis | None, registry: Registry
) -> HoverText | None:
    """The hover for the cursor at ``offset`` of ``text`` (None: nothing to say)."""
    target = target_at(text, offset, index, registry)
    if target is None:
        return None
    markdown = _markdown(target, text, index, registry)
    if markdown is None:
        return None
    return HoverText(markdown, target.token.start, target.token.end)


def _markdown(target: Target, text: str, index: Analysis | None, registry: Registry) -> str | None:
    name = target.name
    if target.kind == "kind":
        layer = lookup(registry, name)
        return kind_markdown(layer) if layer is not None else None
    if target.kind == "param":
        return _param(target, index, registry)
    if target.kind == "function":
        return VALUE_FUNCTIONS[name]
    if target.kind == "keyword":
        return KEYWORDS.get(name)
    if target.kind == "budget":
        return f"**{name}**: at most this many {BUDGET_NAMES[name]}"
    if target.kind == "node":
        return _node(target, text, registry)
    definition = target.definition
    if target.kind == "block" and definition is not None:
        return f"```pipe\n{definition.detail}\n```\n\nblock defined in `{_where(definition)}`"
    if target.kind == "model" and definition is not None:
        return (
            f"**{name}** — model alias\n\n```pipe\n{name} = {definition.detail}\n```\n\n"
            f"defined in `{_where(definition)}`"
        )
    if target.kind == "prompt" and definition is not None:
        body = _prompt_text(definition.value, definition.path)
        return f"**{name}** — prompt (`{_where(definition)}`)\n\n```text\n{body}\n```"
    if target.kind == "import" and index is not None:
        return _import(target, index)
    if target.kind == "file" and index is not None:
        path = resolve_file(index.path, name)
        return f"`{path}`\n\n```text\n{_read_head(str(path))}\n```"
    return None


def _where(definition: object) -> str:
    span = getattr(definition, "name_span", None)
    return f"{span.path}:{span.line}" if span is not None else "?"


def _param(target: Target, index: Analysis | None, registry: Registry) -> str | None:
    call = target.call
    if call is None:
        return None
    if index is not None and call in index.blocks:
        return f"**{target.name}** — parameter of `{index.blocks[call].detail}`"
    layer = lookup(registry, call)
    if layer is None:
        return None
    info = param(layer, target.name)
    if info is None:
        return f"`{call}` has no parameter `{target.name}`"
    return param_markdown(layer, info)


def _node(target: Target, text: str, registry: Registry) -> str | None:
    label = target.node
    if label is None:
        return None
    starts = line_starts(text)
    line, _ = position_at(label.start, starts)
    statement = line_text(text, line, starts).strip()
    tokens = tokenize(text[label.end : label.end + 400])
    kind = next(
        (t.text for t in tokens[1:] if t.kind == "name" and t.text != "optional"),
        None,
    )
    lines = [f"**{target.name}** — node (line {line + 1})", "", f"```pipe\n{statement}\n```"]
    layer = lookup(registry, kind) if kind is not None else None
    if layer is not None:
        lines += ["", f"`{layer.kind}`: {summary(layer)}"]
    return "\n".join(lines)


def _prompt_text(value: ast.Value | None, defined_in: str) -> str:
    if isinstance(value, ast.Str):
        return _head(value.value)
    if (
        isinstance(value, ast.Call)
        and value.name.text == "file"
        and value.args
        and isinstance(value.args[0].value, ast.Str)
    ):
        return _read_head(str(resolve_file(defined_in, value.args[0].value.value)))
    return "(computed)"


def _read_head(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return _head(handle.read(20_000))
    except OSError as error:
        return f"(cannot read {path}: {error.strerror or error})"


def _head(text: str) -> str:
    lines = text.splitlines()
    shown = "\n".join(lines[:MAX_PROMPT_LINES])
    if len(lines) > MAX_PROMPT_LINES:
        shown += f"\n… ({len(lines) - MAX_PROMPT_LINES} more lines)"
    return shown.replace("```", "`\u200b``")


def _import(target: Target, index: Analysis) -> str:
    path = resolve_file(index.path, target.name)
    names = []
    for table in (index.models, index.prompts, index.blocks):
        names += [
            f"{d.kind} `{d.name}`"
            for d in table.values()
            if d.path and Path(d.path).resolve() == path
        ]
    shown = ", ".join(names) if names else "nothing yet"
    return f"`{path}`\n\nbrings in: {shown}"
