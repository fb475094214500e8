"""Completion, from the cursor's context (works on text that does not parse yet):

* between items: ``import``, ``models``, ``prompts``, ``block``, ``pipeline``;
* a statement: layer kinds, blocks, ``optional``, ``repeat``, ``budget``;
* a call's argument: the kind's (or block's) parameter names not written yet;
* an argument's value: the options of a ``Literal`` parameter, ``true``/``false``, model
  aliases and prompts in scope, the value functions (``choice``, ``int``, ...);
* after ``<-``: the nodes labelled earlier in the pipeline or block;
* an import's path: the ``.pipe`` files next to the document.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from archon.layers.registry import Registry
from archon.lsp.analysis import Analysis
from archon.lsp.kinds import (
    BUDGET_NAMES,
    KEYWORDS,
    VALUE_FUNCTIONS,
    kind_names,
    lookup,
    params,
    summary,
)
from archon.lsp.text import Context, Token, body_labels, context_at, tokenize

ItemKind = Literal[
    "kind", "block", "keyword", "param", "value", "model", "prompt", "node", "function", "file"
]


@dataclass(frozen=True)
class Item:
    label: str
    kind: ItemKind
    detail: str = ""
    insert: str | None = None
    """Text to insert instead of the label (e.g. ``top_k = ``)."""
    documentation: str = ""


_TOP = ("import", "models", "prompts", "block", "pipeline")
_STATEMENT = ("optional", "repeat", "budget")


def complete_at(text: str, offset: int, index: Analysis | None, registry: Registry) -> list[Item]:
    """The completion items for the cursor at ``offset`` of ``text``."""
    tokens = tokenize(text)
    context = context_at(text, offset, tokens)
    items = _items(context, text, offset, index, registry, tokens)
    prefix = context.prefix
    return [item for item in items if item.label.startswith(prefix)] if prefix else items


def _items(
    context: Context,
    text: str,
    offset: int,
    index: Analysis | None,
    registry: Registry,
    tokens: list[Token],
) -> list[Item]:
    where = context.where
    if where == "top":
        return [Item(k, "keyword", KEYWORDS[k]) for k in _TOP]
    if where == "import":
        return _import_files(index)
    if where == "body":
        items = [_kind_item(registry, name) for name in kind_names(registry)]
        if index is not None:
            items += [Item(n, "block", d.detail) for n, d in sorted(index.blocks.items())]
        items += [Item(k, "keyword", KEYWORDS[k]) for k in _STATEMENT]
        return items
    if where == "inputs":
        if context.body_start is None:
            return []
        limit = offset - len(context.prefix)
        labels = body_labels(tokens, context.body_start, limit=limit)
        own = _own_label(tokens, labels, limit)
        names = dict.fromkeys(t.text for t in labels if t is not own)
        return [Item(name, "node", "node") for name in names]
    if where == "budget":
        return [Item(n, "keyword", d) for n, d in BUDGET_NAMES.items()]
    if where == "args":
        return _param_items(context, index, registry)
    if where in ("value", "binding"):
        return _value_items(context, index, registry)
    return []


def _own_label(tokens: list[Token], labels: list[Token], limit: int) -> Token | None:
    """The label of the statement whose ``<-`` the cursor is after (a node cannot be its
    own input): ``label = [optional] kind(...) <-``."""
    if not labels:
        return None
    label = labels[-1]
    position = tokens.index(label)
    rest = [t for t in tokens[position + 1 :] if t.start < limit]
    if len(rest) < 4 or rest[0].text != "=":
        return None
    call = rest[2:] if rest[1].text == "optional" else rest[1:]
    if len(call) < 2 or call[0].kind != "name" or call[1].text != "(":
        return None
    depth = 0
    for index, token in enumerate(call[1:], start=1):
        depth += {"(": 1, ")": -1}.get(token.text, 0)
        if depth == 0:
            after = call[index + 1] if index + 1 < len(call) else None
            return label if after is not None and after.kind == "arrow" else None
    return None


def _kind_item(registry: Registry, name: str) -> Item:
    layer = lookup(registry, name)
    if layer is None:
        return Item(name, "kind")
    return Item(name, "kind", summary(layer))


def _param_items(context: Context, index: Analysis | None, registry: Registry) -> list[Item]:
    call = context.call
    if call is None:
        return []
    used = set(context.used)
    if index is not None and call in index.blocks:
        detail = index.blocks[call].detail
        inside = detail[detail.find("(") + 1 : detail.rfind(")")]
        names = [part.split("=")[0].strip() for part in inside.split(",") if part.strip()]
        return [Item(n, "param", detail, insert=f"{n} = ") for n in names if n not in used]
    layer = lookup(registry, call)
    if layer is None:
        return []
    items = []
    for info in params(layer):
        if info.name in used:
            continue
        default = "required" if info.default is None else f"= {info.default}"
        items.append(
            Item(info.name, "param", f"{info.type}  {default}", f"{info.name} = ", info.doc)
        )
    return items


def _value_items(context: Context, index: Analysis | None, registry: Registry) -> list[Item]:
    items: list[Item] = []
    layer = lookup(registry, context.call) if context.call else None
    info = None
    if layer is not None and context.param is not None:
        info = next((p for p in params(layer) if p.name == context.param), None)
    if info is not None and info.options:
        items += [
            Item(f'"{o}"' if isinstance(o, str) else str(o), "value", f"{context.param} option")
            for o in info.options
        ]
        if not context.value_functions:
            items.append(Item("choice", "function", VALUE_FUNCTIONS["choice"], "choice("))
        return items
    if info is not None and info.is_bool:
        items += [Item("true", "value"), Item("false", "value")]
    if index is not None:
        items += [Item(n, "model", d.detail) for n, d in sorted(index.models.items())]
        items += [Item(n, "prompt", _one_line(d.detail)) for n, d in sorted(index.prompts.items())]
    in_binding = context.where == "binding"
    allowed = ("file", "model") if in_binding else ("choice", "int", "float", "file")
    items += [Item(n, "function", VALUE_FUNCTIONS[n], f"{n}(") for n in allowed]
    return items


def _one_line(text: str, width: int = 60) -> str:
    first = text.splitlines()[0] if text else ""
    return first if len(first) <= width and "\n" not in text else first[:width] + "…"


def _import_files(index: Analysis | None) -> list[Item]:
    if index is None or index.path.startswith("<"):
        return []
    here = Path(index.path).parent
    found: list[Item] = []
    for root, dirs, files in os.walk(here):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("node_modules",)]
        for name in files:
            path = Path(root) / name
            if name.endswith(".pipe") and path != Path(index.path):
                found.append(Item(str(path.relative_to(here)), "file"))
        if len(found) > 200:
            break
    return sorted(found, key=lambda item: item.label)
