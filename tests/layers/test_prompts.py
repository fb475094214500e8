"""Prompt rendering is plain, single-pass substitution."""

from __future__ import annotations

from archon.layers.prompts import (
    answer_messages,
    build_messages,
    last_user,
    number_candidates,
    render,
)
from archon.values import Candidate, Message


def test_render_substitutes_known_placeholders_once() -> None:
    out = render(
        "{query} | {candidates} | {unknown} | {0.__class__}", query="{candidates}", candidates="C"
    )
    assert out == "{candidates} | C | {unknown} | {0.__class__}"


def test_number_candidates_with_critiques() -> None:
    text = number_candidates(
        [Candidate(text="a"), Candidate(text="b", critique="weak")], critiques=True
    )
    assert text.startswith("[1] a") and "[2] b" in text and "weak" in text


def _pairs(messages: tuple[Message, ...]) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in messages]


def test_build_messages_for_a_judge_is_a_system_and_a_user_message() -> None:
    assert _pairs(build_messages("Rate it.", system=None, default_system="Judge.")) == [
        ("system", "Judge."),
        ("user", "Rate it."),
    ]
    assert _pairs(build_messages("Rate it.", system="Mine.", default_system="Judge.")) == [
        ("system", "Mine."),
        ("user", "Rate it."),
    ]
    assert _pairs(build_messages("Rate it.", system="", default_system="Judge.")) == [
        ("user", "Rate it.")
    ]


CONVERSATION = (
    Message(role="system", content="Own."),
    Message(role="user", content="first"),
    Message(role="assistant", content="reply"),
    Message(role="user", content="second"),
)


def test_build_messages_keeps_the_conversation_and_replaces_its_last_user_turn() -> None:
    out = build_messages("U", system=None, default_system="Default.", conversation=CONVERSATION)
    assert _pairs(out) == [
        ("system", "Own."),
        ("user", "first"),
        ("assistant", "reply"),
        ("user", "U"),
    ]
    given = build_messages("U", system="Given.", default_system="D.", conversation=CONVERSATION)
    assert _pairs(given)[0] == ("system", "Given.") and len(given) == 4
    without = build_messages("U", system=None, default_system="D.", conversation=CONVERSATION[1:])
    assert _pairs(without)[0] == ("system", "D.")


def test_build_messages_appends_the_user_turn_after_a_trailing_reply() -> None:
    out = build_messages("U", system=None, default_system="D.", conversation=CONVERSATION[:3])
    assert _pairs(out)[-2:] == [("assistant", "reply"), ("user", "U")]


def test_answer_messages_wraps_the_last_user_turn_in_the_prompt() -> None:
    query = (Message(role="user", content="2+2? {candidates}"),)
    plain = answer_messages(query, None, system=None, default_system="D.")
    assert _pairs(plain) == [("system", "D."), ("user", "2+2? {candidates}")]
    wrapped = answer_messages(query, "Think. {query} {n}", system="S.", default_system="D.")
    assert _pairs(wrapped) == [("system", "S."), ("user", "Think. 2+2? {candidates} {n}")]
    assert last_user(CONVERSATION) == "second" and last_user(()) == ""
