"""One translation of a :class:`~archon.values.CompletionRequest` into chat-completion arguments.

litellm's ``acompletion``, an OpenAI-compatible server's JSON body and llama-cpp-python's
``create_chat_completion`` all take the same OpenAI-shaped arguments: ``messages`` as a list of
``{"role", "content"}`` dicts and the sampling settings under the same names. The clients build
them here and add only what differs, as data: the model name the provider expects (or none),
fixed provider arguments and what asking for log-probabilities takes. Settings the request
leaves unset (``None``, no stop strings, no logprobs) are left out, so the provider's own
defaults apply.

The reading direction is shared too: :func:`mean_logprob` of a plain OpenAI-shaped choice
dict, and :func:`reply_text`, the text of a reply as the request asked for it (a
``stop_after_code`` request is sent with :data:`~archon.runtime.clients.code_stop.FENCE_STOP`
among its stop strings, and its reply gets its closing fence back).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from archon.runtime.clients.code_stop import FENCE_STOP, close_code
from archon.values import CompletionRequest

__all__ = ["SAMPLING", "Dialect", "chat_arguments", "mean_logprob", "reply_text", "stops"]

SAMPLING = ("temperature", "top_p", "max_tokens", "seed")
"""Request fields passed on under their own name when set."""


@dataclass(frozen=True)
class Dialect:
    """What one provider's arguments add to the common ones.

    Attributes:
        strip_prefix: sent as ``model`` is the model string without this prefix (``""``:
            the whole string).
        sends_model: False leaves ``model`` out (the client picks the model itself).
        fixed: arguments every call carries, after ``model`` and ``messages``.
        logprobs: the arguments that ask for log-probabilities.
    """

    strip_prefix: str = ""
    sends_model: bool = True
    fixed: tuple[tuple[str, object], ...] = ()
    logprobs: tuple[tuple[str, object], ...] = (("logprobs", True),)


def chat_arguments(request: CompletionRequest, dialect: Dialect) -> dict[str, Any]:
    """The chat-completion arguments of one sample of ``request`` in ``dialect``.

    Example:
        >>> from archon.values import Message
        >>> request = CompletionRequest(model="openai/m", temperature=0.5,
        ...                             messages=(Message(role="user", content="hi"),))
        >>> chat_arguments(request, Dialect(strip_prefix="openai/"))
        {'model': 'm', 'messages': [{'role': 'user', 'content': 'hi'}], 'temperature': 0.5}
    """
    arguments: dict[str, Any] = {}
    if dialect.sends_model:
        arguments["model"] = request.model.removeprefix(dialect.strip_prefix)
    arguments["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
    arguments.update(dialect.fixed)
    for name in SAMPLING:
        value = getattr(request, name)
        if value is not None:
            arguments[name] = value
    stop = stops(request)
    if stop:
        arguments["stop"] = stop
    if request.logprobs:
        arguments.update(dialect.logprobs)
    return arguments


def stops(request: CompletionRequest) -> list[str]:
    """The stop strings sent for ``request``: its own, then :data:`FENCE_STOP` when it asks
    to stop after the code block.

    Example:
        >>> from archon.values import Message
        >>> stops(CompletionRequest(model="m", messages=(Message(role="user", content="hi"),),
        ...                         stop=("END",), stop_after_code=True))
        ['END', '\\n```\\n\\n']
    """
    sent = list(request.stop)
    if request.stop_after_code and FENCE_STOP not in sent:
        sent.append(FENCE_STOP)
    return sent


def reply_text(request: CompletionRequest, text: str, finish_reason: str | None) -> str:
    """The text of a reply to ``request`` sent with :func:`stops`: unchanged, or for a
    ``stop_after_code`` request cut after its first code block, with the closing fence the
    stop sequence removed put back (see :func:`~archon.runtime.clients.code_stop.close_code`).
    """
    if not request.stop_after_code:
        return text
    return close_code(
        text, truncated=finish_reason == "length", prefix=request.assistant_prefix or ""
    )


def mean_logprob(choice: Mapping[str, Any]) -> float | None:
    """The mean token log-probability of an OpenAI-shaped choice dict (None without any)."""
    content = (choice.get("logprobs") or {}).get("content") or ()
    values = [float(t["logprob"]) for t in content if t.get("logprob") is not None]
    return sum(values) / len(values) if values else None
