"""Request translation: what is honoured, what is refused, what is ignored."""

from __future__ import annotations

from typing import Any

import pytest

from archon.ir import Budget
from archon.serve import ApiError, Sampling, parse_chat_request
from archon.serve.chat import SEED_MODULUS
from archon.values import Message

MODELS = ("direct", "voted")
TEXT_B = {"type": "text", "text": "b"}
USER = {"role": "user", "content": "a"}


def parse(**body: Any) -> Any:
    body.setdefault("model", "direct")
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return parse_chat_request(body, MODELS, max_n=4)


def test_minimal_request() -> None:
    chat = parse()
    assert chat.model == "direct"
    assert chat.messages == (Message(role="user", content="hi"),)
    assert (chat.stream, chat.n, chat.seed, chat.include_usage) == (False, 1, None, False)
    assert chat.sampling == Sampling() and chat.budget == Budget()


def test_conversation_roles_and_text_parts() -> None:
    chat = parse(
        messages=[
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {"role": "assistant", "content": "ab"},
            {"role": "user", "content": "again", "name": "bob"},
        ]
    )
    assert [(m.role, m.content) for m in chat.messages] == [
        ("system", "Be brief."),
        ("user", "ab"),
        ("assistant", "ab"),
        ("user", "again"),
    ]


def test_sampling_seed_and_budget_fields() -> None:
    chat = parse(
        temperature=0,
        top_p=1,
        max_tokens=10,
        max_completion_tokens=20,
        seed=SEED_MODULUS + 5,
        n=3,
        stream=True,
        stream_options={"include_usage": True},
        archon={"max_calls": 20, "max_usd": 0.5, "max_seconds": 9},
    )
    # temperature 0 is an explicit zero, not "unset"
    assert chat.sampling == Sampling(temperature=0.0, top_p=1.0, max_tokens=20)
    assert chat.sampling.given() == ("temperature", "top_p", "max_tokens")
    assert chat.seed == 5 and chat.n == 3 and chat.include_usage
    assert chat.budget == Budget(calls=20, usd=0.5, seconds=9)


def test_ignored_fields_are_listed_and_nulls_are_absent() -> None:
    chat = parse(stop=["\n"], presence_penalty=0.5, frequency_penalty=None, user="u", tools=None)
    assert chat.ignored == ("stop", "presence_penalty")
    assert parse(stream_options={"include_usage": True}).include_usage is False  # not a stream


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"model": None}, "model"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0]"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content",
        ),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]},
            "messages",
        ),
        ({"n": 5}, "n"),
        ({"n": True}, "n"),
        ({"stream": "yes"}, "stream"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": "hot"}, "temperature"),
        ({"seed": 1.5}, "seed"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"logprobs": True}, "logprobs"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"archon": {"max_calls": 0}}, "archon.max_calls"),
        ({"archon": []}, "archon"),
    ],
)
def test_refused(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse(**fields)
    assert caught.value.status == 400
    assert caught.value.param == param
    assert caught.value.body()["error"]["type"] == "invalid_request_error"


def test_unknown_model_suggests_the_closest() -> None:
    with pytest.raises(ApiError, match="did you mean 'voted'") as caught:
        parse(model="voter")
    assert caught.value.code == "model_not_found"


def test_body_must_be_an_object() -> None:
    with pytest.raises(ApiError, match="JSON object"):
        parse_chat_request([1, 2], MODELS, max_n=1)
