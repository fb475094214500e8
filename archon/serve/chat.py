"""Request translation: an OpenAI chat-completions body -> a checked :class:`ChatRequest`.

What is honoured (docs/serve.md has the table): ``model``, ``messages``, ``stream``,
``stream_options.include_usage``, ``n``, ``seed``, and ``temperature`` / ``top_p`` /
``max_tokens`` (or ``max_completion_tokens``) where the pipeline lets them override its answer
call (see :mod:`archon.serve.pipelines`). ``extra_body={"archon": {...}}`` sets a per-request
budget. Fields that would change the meaning of the answer and that a pipeline cannot honour
(tools, JSON response formats, logprobs, audio) are refused with 400 rather than silently
dropped; other known sampling fields are accepted and reported as ignored.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from archon.ir import Budget
from archon.serve.errors import ApiError, bad_request
from archon.values import Message

SEED_MODULUS = 2**31
"""Request seeds are reduced into [0, 2**31): every backend (llama.cpp included) takes them."""

# Accepted so that ordinary clients work, but they have no effect on a pipeline's answer.
IGNORED_FIELDS = (
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "top_k",
    "min_p",
    "repetition_penalty",
)


@dataclass(frozen=True)
class Sampling:
    """Sampling values a request gives (None: not given)."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None

    def given(self) -> tuple[str, ...]:
        """Names of the fields the request set."""
        return tuple(
            name
            for name, value in (
                ("temperature", self.temperature),
                ("top_p", self.top_p),
                ("max_tokens", self.max_tokens),
            )
            if value is not None
        )


@dataclass(frozen=True)
class ChatRequest:
    """A checked chat-completions request.

    Attributes:
        model: the served model name (a pipeline).
        messages: the conversation, ending with the user's turn.
        stream / include_usage: SSE output, and a final usage chunk in it.
        n: how many times to run the pipeline (different seeds).
        seed: the request's seed, or None for the server's.
        sampling: temperature / top_p / max_tokens as given.
        budget: the per-request budget from ``extra_body.archon``.
        ignored: names of given fields that have no effect.
    """

    model: str
    messages: tuple[Message, ...]
    stream: bool = False
    include_usage: bool = False
    n: int = 1
    seed: int | None = None
    sampling: Sampling = field(default_factory=Sampling)
    budget: Budget = field(default_factory=Budget)
    ignored: tuple[str, ...] = ()


class ArchonOptions(BaseModel):
    """``extra_body={"archon": {...}}``: a budget for this request, on top of the server's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_calls: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1)
    max_usd: float | None = Field(None, gt=0)
    max_seconds: float | None = Field(None, gt=0)

    def budget(self) -> Budget:
        return Budget(
            calls=self.max_calls,
            tokens=self.max_tokens,
            usd=self.max_usd,
            seconds=self.max_seconds,
        )


def parse_chat_request(body: object, models: Collection[str], *, max_n: int) -> ChatRequest:
    """Check ``body`` and translate it; raise :class:`ApiError` (400) saying what is wrong."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    model = _model(body.get("model"), models)
    _refuse_unsupported(body)
    stream = _boolean(body, "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad_request("stream_options must be an object", param="stream_options")
    include_usage = bool(options and options.get("include_usage"))
    ignored = [name for name in IGNORED_FIELDS if body.get(name) is not None]
    return ChatRequest(
        model=model,
        messages=parse_messages(body.get("messages")),
        stream=stream,
        include_usage=stream and include_usage,
        n=_integer(body, "n", low=1, high=max_n, default=None) or 1,
        seed=_seed(body.get("seed")),
        sampling=_sampling(body),
        budget=_archon_options(body.get("archon")).budget(),
        ignored=tuple(ignored),
    )


def _model(value: object, models: Collection[str]) -> str:
    if not isinstance(value, str) or not value:
        raise bad_request("model is required: the name of a served pipeline", param="model")
    if value not in models:
        close = get_close_matches(value, list(models), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        served = ", ".join(sorted(models))
        raise ApiError(
            400,
            f"model '{value}' is not served here{hint} (served: {served}; GET /v1/models)",
            param="model",
            code="model_not_found",
        )
    return value


def _refuse_unsupported(body: Mapping[str, Any]) -> None:
    for name in ("tools", "functions"):
        if body.get(name):
            raise bad_request(
                f"{name} are not supported: a pipeline answers with text only",
                param=name,
                code="unsupported_parameter",
            )
    choice = body.get("tool_choice")
    if choice not in (None, "none", "auto"):
        raise bad_request("tool_choice is not supported", param="tool_choice")
    response_format = body.get("response_format")
    if response_format is not None and (
        not isinstance(response_format, dict) or response_format.get("type") != "text"
    ):
        raise bad_request(
            "response_format other than text is not supported",
            param="response_format",
            code="unsupported_parameter",
        )
    if body.get("logprobs") or body.get("top_logprobs"):
        raise bad_request(
            "logprobs are not returned: a pipeline's answer is not one model's sample",
            param="logprobs",
            code="unsupported_parameter",
        )
    modalities = body.get("modalities")
    if isinstance(modalities, list) and any(m != "text" for m in modalities):
        raise bad_request("only the text modality is supported", param="modalities")


def parse_messages(value: object) -> tuple[Message, ...]:
    """The conversation of a request; 400 unless it is non-empty and ends with a user turn."""
    if not isinstance(value, list) or not value:
        raise bad_request("messages must be a non-empty array", param="messages")
    messages = tuple(_message(item, index) for index, item in enumerate(value))
    if messages[-1].role != "user":
        raise bad_request(
            "the last message must be the user's: a pipeline answers the user's turn",
            param="messages",
        )
    return messages


def _message(item: object, index: int) -> Message:
    where = f"messages[{index}]"
    if not isinstance(item, dict):
        raise bad_request(f"{where} must be an object with role and content", param=where)
    role = item.get("role")
    if role == "developer":
        role = "system"
    if role in ("tool", "function"):
        raise bad_request(f"{where}: {role} messages are not supported", param=where)
    if role not in ("system", "user", "assistant"):
        raise bad_request(
            f"{where}.role must be system, developer, user or assistant (got {_short(role)})",
            param=f"{where}.role",
        )
    return Message(role=role, content=_content(item.get("content"), where))


def _content(value: object, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = _short(part.get("type")) if isinstance(part, dict) else type(part).__name__
                raise bad_request(
                    f"{where}.content: only text parts are supported (got {kind})",
                    param=f"{where}.content",
                )
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise bad_request(f"{where}.content must be a string or text parts", param=f"{where}.content")


def _short(value: object, limit: int = 60) -> str:
    """A bounded description of a client's value for an error message.

    Scalars are shown (cut to ``limit`` characters); containers by their type only, so a
    deeply nested or huge value cannot make the message large or recursive.
    """
    if value is None or isinstance(value, bool | float | str):
        text = repr(value)
    elif isinstance(value, int):
        bits = value.bit_length()
        text = str(value) if bits < 200 else f"an integer of {bits} bits"
    else:
        return type(value).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _boolean(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad_request(f"{name} must be true or false", param=name)
    return value


def _integer(
    body: Mapping[str, Any], name: str, *, low: int, high: int | None, default: int | None
) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{name} must be an integer", param=name)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise bad_request(f"{name} must be {bound} (got {_short(value)})", param=name)
    return value


def _number(body: Mapping[str, Any], name: str, *, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad_request(f"{name} must be a number", param=name)
    if not low <= value <= high:
        raise bad_request(f"{name} must be between {low:g} and {high:g}", param=name)
    return float(value)


def _seed(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request("seed must be an integer", param="seed")
    return value % SEED_MODULUS


def _sampling(body: Mapping[str, Any]) -> Sampling:
    top_p = _number(body, "top_p", low=0.0, high=1.0)
    if top_p == 0.0:
        raise bad_request("top_p must be greater than 0", param="top_p")
    max_tokens = _integer(body, "max_completion_tokens", low=1, high=1_000_000, default=None)
    if max_tokens is None:
        max_tokens = _integer(body, "max_tokens", low=1, high=1_000_000, default=None)
    return Sampling(
        temperature=_number(body, "temperature", low=0.0, high=2.0),
        top_p=top_p,
        max_tokens=max_tokens,
    )


def _archon_options(value: object) -> ArchonOptions:
    if value is None:
        return ArchonOptions()
    if not isinstance(value, dict):
        raise bad_request('archon must be an object, e.g. {"max_calls": 20}', param="archon")
    try:
        return ArchonOptions.model_validate(value)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        known = ", ".join(ArchonOptions.model_fields)
        raise bad_request(
            f"archon.{field}: {first['msg']} (known fields: {known})", param=f"archon.{field}"
        ) from error
