"""Positions, a tolerant tokenizer and the cursor's context.

Positions here are 0-based (line, column) pairs with the column in code points, as Python
indexes strings; :func:`to_client_col` and :func:`from_client_col` convert to and from the
editor's units (UTF-16 unless the client chose another encoding).

The tokenizer never fails: an unterminated string runs to the end of its line (a long string
to the end of the text) and an unknown character is one ``other`` token. The cursor context
is computed from the tokens before the cursor, so completion works on text that does not
parse yet, such as ``generate(models = [sm``.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from archon.source import Span

# --- positions ------------------------------------------------------------------------------


def line_starts(text: str) -> list[int]:
    """The offset of the first character of every line."""
    starts = [0]
    find = text.find
    index = find("\n")
    while index != -1:
        starts.append(index + 1)
        index = find("\n", index + 1)
    return starts


def offset_at(text: str, line: int, col: int, starts: Sequence[int] | None = None) -> int:
    """The offset of 0-based (line, col), clamped to the text and to the line's end."""
    starts = starts if starts is not None else line_starts(text)
    if line < 0:
        return 0
    if line >= len(starts):
        return len(text)
    begin = starts[line]
    end = starts[line + 1] - 1 if line + 1 < len(starts) else len(text)
    return min(begin + max(col, 0), end)


def position_at(offset: int, starts: Sequence[int]) -> tuple[int, int]:
    """0-based (line, col) of an offset."""
    line = bisect_right(starts, offset) - 1
    return line, offset - starts[line]


def line_text(text: str, line: int, starts: Sequence[int] | None = None) -> str:
    """The text of a 0-based line without its newline ('' past the end)."""
    starts = starts if starts is not None else line_starts(text)
    if line < 0 or line >= len(starts):
        return ""
    end = text.find("\n", starts[line])
    return text[starts[line] :] if end == -1 else text[starts[line] : end]


Encoding = Literal["utf-8", "utf-16", "utf-32"]


def _units(char: str, encoding: str) -> int:
    if encoding == "utf-32":
        return 1
    if encoding == "utf-8":
        return len(char.encode("utf-8", errors="replace"))
    return 2 if ord(char) > 0xFFFF else 1


def to_client_col(line: str, col: int, encoding: str = "utf-16") -> int:
    """A code-point column of ``line`` in the client's code units."""
    head = line[:col]
    if encoding == "utf-32" or head.isascii():
        return len(head)
    return sum(_units(c, encoding) for c in head)


def from_client_col(line: str, units: int, encoding: str = "utf-16") -> int:
    """A column in the client's code units as a code-point column of ``line``."""
    if encoding == "utf-32" or line.isascii():
        return min(units, len(line))
    seen = 0
    for index, char in enumerate(line):
        if seen >= units:
            return index
        seen += _units(char, encoding)
    return len(line)


def span_range(span: Span) -> tuple[int, int, int, int]:
    """A compiler span (1-based, end exclusive) as 0-based (line, col, end_line, end_col)."""
    return span.line - 1, span.col - 1, span.end_line - 1, max(span.end_col - 1, 0)


def contains(span: Span, line: int, col: int) -> bool:
    """Whether 0-based (line, col) is inside ``span`` (its end included: a cursor just after
    a name is on it)."""
    start = (span.line - 1, span.col - 1)
    end = (span.end_line - 1, span.end_col - 1)
    return start <= (line, col) <= end


# --- tokens ---------------------------------------------------------------------------------

TokenKind = Literal[
    "ws", "comment", "long", "string", "number", "name", "arrow", "le", "punct", "other"
]

_TOKEN = re.compile(
    r"""
     (?P<ws>\s+)
    |(?P<comment>\#[^\n]*)
    |(?P<long>\"\"\"[^"]*(?:"(?!"")[^"]*)*(?:\"\"\"|\Z))
    |(?P<string>"[^"\\\n]*(?:\\.[^"\\\n]*)*"?)
    |(?P<number>-?(?:[0-9][0-9_]*(?:\.[0-9][0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9]+)?)
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
    |(?P<arrow><-)
    |(?P<le><=)
    |(?P<punct>[(){}\[\],=])
    |(?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)

KEYWORDS = frozenset(
    {"import", "models", "prompts", "block", "pipeline", "budget", "repeat", "optional"}
)
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = {")", "]", "}"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    """The significant tokens of ``text`` (no whitespace or comments), never failing."""
    tokens = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind in ("ws", "comment") or kind is None:
            continue
        tokens.append(Token(kind, match.group(), match.start(), match.end()))  # type: ignore[arg-type]
    return tokens


def _closed(token: Token) -> bool:
    quote = '"""' if token.kind == "long" else '"'
    return len(token.text) >= 2 * len(quote) and token.text.endswith(quote)


def token_at(tokens: Sequence[Token], offset: int) -> int | None:
    """The index of the token under ``offset`` (a cursor just after a token is on it)."""
    starts = [t.start for t in tokens]
    index = bisect_right(starts, offset) - 1
    if index < 0:
        return None
    if tokens[index].start <= offset <= tokens[index].end:
        return index
    return None


def word_at(text: str, offset: int) -> tuple[str, int, int]:
    """The name (dots included) around ``offset``: (word, start, end); '' when none."""
    start = offset
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_."):
        start -= 1
    end = offset
    while end < len(text) and (text[end].isalnum() or text[end] in "_."):
        end += 1
    return text[start:end], start, end


# --- the cursor's context --------------------------------------------------------------------

Where = Literal[
    "top",  # between items: import, models, prompts, block, pipeline
    "import",  # the path string of an import
    "body",  # a statement of a pipeline, block or repeat body
    "inputs",  # a name after `<-`
    "args",  # an argument name of a call
    "value",  # an argument's value (or inside it: a list, choice(...))
    "binding",  # inside models { } or prompts { }
    "budget",  # inside budget { }
    "other",  # inside a string or comment, or anywhere nothing applies
]


@dataclass
class _Frame:
    opener: str
    owner: str | None = None  # a brace: pipeline/block/repeat/models/prompts/budget
    call: str | None = None  # a paren: the name before it
    start: int = 0
    param: str | None = None  # a paren: the argument being written
    used: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    """What the cursor is writing."""

    where: Where
    prefix: str = ""
    """The part of the name before the cursor (what completion filters on)."""
    call: str | None = None
    """For args and value: the layer or block call whose arguments these are."""
    param: str | None = None
    """For value: the argument's name."""
    used: tuple[str, ...] = ()
    """For args: the argument names already written in the call."""
    body_start: int | None = None
    """The offset of the ``{`` of the innermost pipeline or block body around the cursor."""
    value_functions: tuple[str, ...] = ()
    """For value: the value functions the cursor is inside, innermost last (``choice``...)."""


_VALUE_FUNCTIONS = frozenset({"choice", "int", "float", "file", "model"})


def context_at(text: str, offset: int, tokens: Sequence[Token] | None = None) -> Context:
    """The context of the cursor at ``offset`` of ``text``."""
    tokens = tokens if tokens is not None else tokenize(text)
    prefix_start = offset
    while prefix_start > 0 and (text[prefix_start - 1].isalnum() or text[prefix_start - 1] in "_."):
        prefix_start -= 1
    prefix = text[prefix_start:offset]
    stack: list[_Frame] = []
    pending: str | None = None  # the keyword whose `{` comes next
    inputs = False
    previous: Token | None = None
    for token in tokens:
        if (
            token.kind in ("string", "long")
            and token.start < offset
            and (offset < token.end or not _closed(token))
        ):
            if previous is not None and previous.text == "import" and not stack:
                return Context("import", prefix=text[token.start + 1 : offset])
            return Context("other")
        if token.end > prefix_start or token.start >= offset:
            if token.start < prefix_start:  # e.g. a number being typed
                return Context("other")
            break
        kind, value = token.kind, token.text
        if kind == "name" and value in KEYWORDS and not (stack and stack[-1].opener != "{"):
            if value in ("pipeline", "block", "models", "prompts", "budget", "repeat"):
                pending = value
            inputs = False
        elif kind == "arrow":
            inputs = True
        elif (
            kind == "name" and inputs and previous is not None and previous.text not in ("<-", ",")
        ):
            inputs = False
        elif value in _OPENERS:
            frame = _Frame(value, start=token.start)
            if value == "{":
                frame.owner = pending
                pending = None
                inputs = False
            elif value == "(" and pending == "block":
                frame.owner = "params"  # `block name(a, b = 1)`: names being defined
            elif value == "(" and previous is not None and previous.kind == "name":
                frame.call = previous.text
            stack.append(frame)
        elif value in _CLOSERS:
            # Pop to the matching opener; a stray closer is ignored.
            for depth in range(len(stack) - 1, -1, -1):
                if _OPENERS[stack[depth].opener] == value:
                    del stack[depth:]
                    break
            inputs = False if value == "}" else inputs
        elif value == "=" and stack and stack[-1].opener == "(" and previous is not None:
            if previous.kind == "name":
                stack[-1].param = previous.text
                stack[-1].used.append(previous.text)
        elif value == "," and stack and stack[-1].opener == "(":
            stack[-1].param = None
        previous = token
    return _classify(stack, previous, prefix, inputs)


def _classify(stack: list[_Frame], previous: Token | None, prefix: str, inputs: bool) -> Context:
    body = next(
        (f.start for f in reversed(stack) if f.opener == "{" and f.owner in ("pipeline", "block")),
        None,
    )
    if not stack:
        if previous is not None and previous.text == "import":
            return Context("import", prefix=prefix)
        return Context("top", prefix=prefix)
    innermost = stack[-1]
    if innermost.opener == "{":
        if inputs and previous is not None and previous.text in ("<-", ","):
            return Context("inputs", prefix=prefix, body_start=body)
        if innermost.owner in ("models", "prompts"):
            return Context("binding", prefix=prefix)
        if innermost.owner == "budget":
            return Context("budget", prefix=prefix)
        if innermost.owner in ("pipeline", "block", "repeat"):
            return Context("body", prefix=prefix, body_start=body)
        return Context("other", prefix=prefix)
    # Inside parentheses or brackets: find the call whose arguments these are.
    functions: list[str] = []
    for depth in range(len(stack) - 1, -1, -1):
        frame = stack[depth]
        if frame.opener == "{":
            break
        if frame.opener != "(":
            continue
        if frame.owner == "params":
            return Context("other", prefix=prefix)
        if frame.call in _VALUE_FUNCTIONS:
            functions.append(frame.call)
            continue
        at_args = depth == len(stack) - 1 and (previous is None or previous.text in ("(", ","))
        if at_args and frame.param is None:
            return Context(
                "args", prefix=prefix, call=frame.call, used=tuple(frame.used), body_start=body
            )
        return Context(
            "value",
            prefix=prefix,
            call=frame.call,
            param=frame.param,
            body_start=body,
            value_functions=tuple(reversed(functions)),
        )
    if stack[0].opener == "{" and stack[0].owner in ("models", "prompts"):
        return Context("value", prefix=prefix, value_functions=tuple(reversed(functions)))
    return Context("other", prefix=prefix)


def body_labels(tokens: Sequence[Token], body_start: int, limit: int | None = None) -> list[Token]:
    """The node labels (``name = kind(...)``, ``name = repeat ...``) of the body whose ``{``
    is at ``body_start``, repeat bodies included, up to ``limit`` (an offset) or the body's
    closing brace."""
    starts = [t.start for t in tokens]
    index = bisect_right(starts, body_start) - 1
    if index < 0 or tokens[index].start != body_start:
        return []
    labels: list[Token] = []
    braces = 0
    groups = 0  # open ( and [
    for position in range(index, len(tokens)):
        token = tokens[position]
        if limit is not None and token.start >= limit:
            break
        text = token.text
        if text == "{":
            braces += 1
        elif text == "}":
            braces -= 1
            if braces == 0:
                break
        elif text in ("(", "["):
            groups += 1
        elif text in (")", "]"):
            groups = max(groups - 1, 0)
        elif (
            token.kind == "name"
            and groups == 0
            and text not in KEYWORDS
            and position + 1 < len(tokens)
            and tokens[position + 1].text == "="
            and tokens[position - 1].text not in ("(", ",")
        ):
            labels.append(token)
    return labels


def enclosing_body_start(tokens: Sequence[Token], offset: int) -> int | None:
    """The offset of the ``{`` of the pipeline or block around ``offset`` (lexically)."""
    stack: list[tuple[str, str | None, int]] = []
    pending: str | None = None
    for token in tokens:
        if token.start >= offset:
            break
        if token.kind == "name" and token.text in ("pipeline", "block", "models", "prompts"):
            if not stack:
                pending = token.text
        elif token.text in ("(", "[", "{"):
            owner = pending if token.text == "{" else None
            if token.text == "{":
                pending = None
            stack.append((token.text, owner, token.start))
        elif token.text in _CLOSERS:
            for depth in range(len(stack) - 1, -1, -1):
                if _OPENERS[stack[depth][0]] == token.text:
                    del stack[depth:]
                    break
    for opener, owner, start in stack:
        if opener == "{" and owner in ("pipeline", "block"):
            return start
    return None
