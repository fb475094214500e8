"""Frozen runtime payloads that flow between layers, and the model request/response types.

Layers never pass string-keyed dicts to each other: a layer consumes and produces these types,
and each layer kind declares which ones, so the compiler can check edges before anything runs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Message(_Frozen):
    """One chat message."""

    role: Literal["system", "user", "assistant"]
    content: str


class Usage(_Frozen):
    """Tokens and money spent by one or more calls."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            calls=self.calls + other.calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            usd=self.usd + other.usd,
        )


class Payload(_Frozen):
    """Base of everything that flows along a pipeline edge (a port type)."""


class Candidate(_Frozen):
    """One candidate answer, with where it came from and what later layers said about it."""

    text: str
    model: str = ""
    sample_index: int = 0
    source_node: str = ""
    critique: str | None = None
    score: float | None = None
    logprob: float | None = None
    signals: tuple[tuple[str, float], ...] = ()
    """Named evidence that layers recorded about this candidate, in the order recorded, e.g.
    ``("tests_passed", 0.8)``, ``("exec_agreement", 0.6)``, ``("vote_share", 0.4)``,
    ``("logprob", -0.3)``, ``("judge", 1.0)``. A layer that records a signal already present
    replaces its value. A combining layer turns them into one ``score``."""

    def signal(self, name: str) -> float | None:
        """The value of signal ``name``, or None when no layer recorded it."""
        return next((value for key, value in self.signals if key == name), None)

    def with_signal(self, name: str, value: float) -> Candidate:
        """A copy with signal ``name`` set to ``value`` (replacing an earlier value)."""
        kept = tuple((key, v) for key, v in self.signals if key != name)
        return self.model_copy(update={"signals": (*kept, (name, float(value)))})


class Candidates(Payload):
    """An ordered list of candidate answers (order is meaningful after ranking)."""

    items: tuple[Candidate, ...] = ()


class TestCase(_Frozen):
    """One generated test: executable ``assert`` code or a natural-language check."""

    __test__ = False  # not a pytest class
    text: str
    kind: Literal["code", "natural", "io"] = "code"
    stdin: str = ""
    """``io`` tests: the standard input given to the program."""
    stdout: str | None = None
    """``io`` tests: the expected standard output (compared after normalising whitespace)."""
    origin: Literal["model", "query"] = "model"
    """Where the test came from: written by a model, or stated by the query itself."""


class Tests(Payload):
    """Tests generated for the query."""

    __test__ = False
    items: tuple[TestCase, ...] = ()


class CompletionRequest(_Frozen):
    """What a layer asks of a model: one conversation, ``n`` samples.

    ``None`` means "not set" (provider default), distinct from an explicit ``0``.
    """

    model: str
    messages: tuple[Message, ...]
    n: int = Field(1, ge=1)
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    """Stop strings: the reply ends before the first of them (which it does not include)."""
    stop_after_code: bool = False
    """End the reply after its first complete fenced code block: the text keeps the block
    with its closing fence and nothing after it (how each backend does it:
    :mod:`archon.runtime.clients.code_stop`)."""
    logprobs: bool = False
    assistant_prefix: str | None = None
    """The answer so far: the model continues this text as the start of its reply (the chat
    template is applied, then the prefix is appended without an end-of-turn). Step-level
    search uses it to extend a partial solution by one step. ``None``: a fresh reply."""
    score_only: bool = False
    """Generate nothing; score ``assistant_prefix`` instead: the completion's ``logprob`` is
    the mean token log-probability of the prefix given the conversation (``text`` is empty).
    Backends without prompt log-probabilities raise a non-retryable ``ModelCallError``."""

    @model_validator(mode="after")
    def _score_needs_prefix(self) -> CompletionRequest:
        if self.score_only and not self.assistant_prefix:
            raise ValueError("score_only needs an assistant_prefix to score")
        return self


class Completion(_Frozen):
    """One sampled text, with its mean token log-probability when the model reports it."""

    text: str
    logprob: float | None = None
    finish_reason: str | None = None


class CompletionResponse(_Frozen):
    """The model's answer to a :class:`CompletionRequest`."""

    completions: tuple[Completion, ...]
    usage: Usage = Usage()
    cached: bool = False
