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
    "QUERY_TEMPLATE",
    "answer_messages",
    "build_messages",
    "last_user",
    "number_candidates",
    "number_tests",
    "query_text",
    "render",
    "template",
]

QUERY_TEMPLATE = "{query}"
"""The user prompt of the kinds that answer the query themselves: the query itself (a
``prompt`` override may wrap it, e.g. ``"Think step by step. {query}"``)."""

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


def last_user(query: Sequence[Message]) -> str:
    """The text of the conversation's last user turn ('' when it has none)."""
    return next((m.content for m in reversed(query) if m.role == "user"), "")


def build_messages(
    user: str,
    *,
    system: str | None,
    default_system: str,
    conversation: Sequence[Message] = (),
) -> tuple[Message, ...]:
    """The messages of a model call: every layer builds them here.

    A system prompt first: ``system`` when given, else the conversation's own (its first
    system message), else ``default_system``; an empty one is left out. Then the turns of
    ``conversation`` (its system messages dropped) with the last user turn replaced by
    ``user``, or ``user`` appended when it does not end with a user turn. Judges pass no
    conversation (a system and a user message); layers that answer the query themselves
    pass the query, so multi-turn conversations keep their context.

    Example:
        >>> [m.role for m in build_messages("Q?", system=None, default_system="Be brief.")]
        ['system', 'user']
    """
    turns = [m for m in conversation if m.role != "system"]
    own_system = next((m.content for m in conversation if m.role == "system"), None)
    if turns and turns[-1].role == "user":
        turns[-1] = Message(role="user", content=user)
    else:
        turns.append(Message(role="user", content=user))
    chosen = system if system is not None else (own_system or default_system)
    if chosen:
        turns.insert(0, Message(role="system", content=chosen))
    return tuple(turns)


def answer_messages(
    query: Sequence[Message], prompt: str | None, *, system: str | None, default_system: str
) -> tuple[Message, ...]:
    """The query to answer, its last user turn wrapped in ``prompt`` (default
    :data:`QUERY_TEMPLATE`: unchanged), through :func:`build_messages`."""
    user = render(template(prompt, QUERY_TEMPLATE), query=last_user(query))
    return build_messages(user, system=system, default_system=default_system, conversation=query)
