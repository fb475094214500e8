"""What the name under the cursor refers to (shared by hover and go-to-definition).

Worked out from the current text's tokens, so it follows every keystroke; the definitions
of aliases, prompts and blocks come from the last analysis that parsed (``index``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from archon.layers.registry import Registry
from archon.lsp.analysis import Analysis, Definition
from archon.lsp.kinds import BUDGET_NAMES, KEYWORDS, VALUE_FUNCTIONS, lookup
from archon.lsp.text import (
    Token,
    body_labels,
    context_at,
    enclosing_body_start,
    token_at,
    tokenize,
)

TargetKind = Literal[
    "kind",
    "param",
    "block",
    "function",
    "keyword",
    "budget",
    "model",
    "prompt",
    "node",
    "import",
    "file",
]


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    name: str
    token: Token
    call: str | None = None
    """For a param: the layer or block call it belongs to."""
    definition: Definition | None = None
    node: Token | None = None
    """For a node: the label token that defines it (in the current text)."""


def target_at(text: str, offset: int, index: Analysis | None, registry: Registry) -> Target | None:
    tokens = tokenize(text)
    position = token_at(tokens, offset)
    if position is None:
        return None
    token = tokens[position]
    before = tokens[position - 1] if position > 0 else None
    after = tokens[position + 1] if position + 1 < len(tokens) else None
    if token.kind in ("string", "long"):
        if before is not None and before.text == "import":
            return Target("import", _unquote(token.text), token)
        if (
            before is not None
            and before.text == "("
            and position >= 2
            and tokens[position - 2].text == "file"
        ):
            return Target("file", _unquote(token.text), token)
        return None
    if token.kind != "name":
        return None
    name = token.text
    context = context_at(text, token.start, tokens)
    models = index.models if index is not None else {}
    prompts = index.prompts if index is not None else {}
    blocks = index.blocks if index is not None else {}
    if after is not None and after.text == "(":
        if context.where in ("value", "binding") and name in VALUE_FUNCTIONS:
            return Target("function", name, token)
        if name in blocks:
            return Target("block", name, token, definition=blocks[name])
        if lookup(registry, name) is not None:
            return Target("kind", name, token)
        if name in VALUE_FUNCTIONS:
            return Target("function", name, token)
        return None
    if context.where == "args" and after is not None and after.text == "=":
        return Target("param", name, token, call=context.call)
    if context.where == "budget" and name in BUDGET_NAMES:
        return Target("budget", name, token)
    if name in KEYWORDS and context.where not in ("args", "value", "inputs"):
        return Target("keyword", name, token)
    if context.where in ("inputs", "body"):
        label = _label(tokens, token, offset)
        if label is not None:
            return Target("node", name, token, node=label)
    if context.where in ("value", "binding", "other", "body"):
        if name in models:
            return Target("model", name, token, definition=models[name])
        if name in prompts:
            return Target("prompt", name, token, definition=prompts[name])
    return None


def _label(tokens: list[Token], token: Token, offset: int) -> Token | None:
    """The label defining the node ``token`` names: the last one before it in its body,
    else any in the body (the compiler reports a reference to a later node)."""
    body = enclosing_body_start(tokens, offset)
    if body is None:
        return None
    labels = [t for t in body_labels(tokens, body) if t.text == token.text]
    earlier = [t for t in labels if t.start <= token.start]
    if earlier:
        return earlier[-1]
    return labels[0] if labels else None


def _unquote(text: str) -> str:
    quote = '"""' if text.startswith('"""') else '"'
    body = text[len(quote) :]
    return body[: -len(quote)] if body.endswith(quote) else body
