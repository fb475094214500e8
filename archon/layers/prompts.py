"""Safe prompt templates: placeholder substitution without ``str.format``.

Templates use ``{name}`` placeholders (``{query}``, ``{candidates}``, ``{candidate}``,
``{critique}``, ``{tests}``, ``{n}``, ...). :func:`render` replaces them in **one pass** by plain
string replacement, so

* user text is never interpreted: a query containing ``{candidates}`` or ``{0.__class__}`` is
  inserted verbatim and never expanded (``str.format`` would follow attribute lookups);
* placeholders the caller does not provide are left exactly as written (a user's prompt
  override may contain literal braces, e.g. JSON examples).

Example:
    >>> render("Q: {query} ({n} answers) {unknown}", query="2+2?", n=3)
    'Q: 2+2? (3 answers) {unknown}'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from archon.values import Candidate, Message, TestCase

__all__ = [
    "judge_messages",
    "number_candidates",
    "number_tests",
    "query_text",
    "render",
    "template",
    "with_query",
]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render(text: str, **values: object) -> str:
    """Substitute ``{name}`` placeholders in ``text`` by ``str(values[name])``, in one pass.

    Unknown placeholders stay as they are; substituted text is never scanned again.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(values[name]) if name in values else match.group(0)

    return _PLACEHOLDER.sub(replace, text)


def template(override: str | None, default: str) -> str:
    """The user's prompt override when given, else the layer's default template."""
    return default if override is None else override


def number_candidates(candidates: Sequence[Candidate], *, critiques: bool = False) -> str:
    """Candidates as ``[1] text`` blocks separated by blank lines (critiques optionally)."""
    blocks = []
    for index, candidate in enumerate(candidates, start=1):
        block = f"[{index}] {candidate.text.strip()}"
        if critiques and candidate.critique:
            block += f"\nCritique of [{index}]: {candidate.critique.strip()}"
        blocks.append(block)
    return "\n\n".join(blocks)


def number_tests(tests: Sequence[TestCase]) -> str:
    """Tests as ``1. text`` lines."""
    return "\n".join(f"{i}. {test.text.strip()}" for i, test in enumerate(tests, start=1))


def query_text(query: Sequence[Message]) -> str:
    """The query as judge prompts show it: the user's last turn, or the whole conversation.

    A single user message is returned as is; a longer conversation is written as
    ``User: ...`` / ``Assistant: ...`` lines so that a judge sees the context of the last turn.
    """
    turns = [m for m in query if m.role != "system"]
    if len(turns) == 1:
        return turns[0].content
    labels = {"user": "User", "assistant": "Assistant"}
    return "\n\n".join(f"{labels[m.role]}: {m.content}" for m in turns)


def judge_messages(user: str, *, system: str | None, default_system: str) -> tuple[Message, ...]:
    """A two-message conversation for a judge: a system prompt and the rendered user prompt."""
    chosen = default_system if system is None else system
    messages = [Message(role="system", content=chosen)] if chosen else []
    messages.append(Message(role="user", content=user))
    return tuple(messages)


def with_query(
    query: Sequence[Message], user: str, *, system: str | None, default_system: str
) -> tuple[Message, ...]:
    """The conversation with its last user turn replaced by ``user`` and a system prompt.

    Used by layers that answer the query themselves (``fuse``): earlier turns stay, so
    multi-turn conversations keep their context.
    """
    turns = [m for m in query if m.role != "system"]
    query_system = next((m.content for m in query if m.role == "system"), None)
    if turns and turns[-1].role == "user":
        turns[-1] = Message(role="user", content=user)
    else:
        turns.append(Message(role="user", content=user))
    chosen = system if system is not None else (query_system or default_system)
    if chosen:
        turns.insert(0, Message(role="system", content=chosen))
    return tuple(turns)
