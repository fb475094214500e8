"""The metric contract: score one answer (or one conversation) of one item.

A metric is a small object with a ``name`` and one coroutine, ``score(item, answers, ctx)``,
where ``answers`` holds the pipeline's answer to each user turn (one for single-turn items).
It returns a :class:`Score`; it never raises for a wrong or unparseable answer (that is a
score of 0 or ``valid=False``), only for a broken setup (:class:`MetricError`).

Metrics that call a model (judges, LLM answer parsers) do so through
:meth:`MetricContext.complete`, which goes through the shared :class:`~archon.runtime.Limits`
and the call cache, and report what they spent in :attr:`Score.usage` -- evaluation keeps that
apart from the pipeline's own cost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from archon.errors import ArchonError
from archon.eval.items import EvalItem
from archon.runtime import CallCache, Limits, ModelClient, RunEnv, cache_key
from archon.values import CompletionRequest, CompletionResponse, Message, TestCase, Usage


class MetricError(ArchonError):
    """A metric cannot score with the setup it was given (e.g. a judge without a model)."""


class Score(BaseModel):
    """How good one answer is.

    Attributes:
        value: the metric's number (0/1 for correctness, a 1-10 rating, a win rate...).
        correct: for accuracy-type metrics, whether the answer is right; None otherwise.
        valid: False when the metric could not decide (e.g. an unparseable judgement); such
            scores are left out of the mean and counted separately.
        detail: a short human-readable explanation (first failing test, parsed option...).
        usage: model calls the metric itself made (judges), never the pipeline's.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: float
    correct: bool | None = None
    valid: bool = True
    detail: str = ""
    usage: Usage = Usage()

    @classmethod
    def of(cls, correct: bool, detail: str = "", usage: Usage | None = None) -> Score:
        """A 0/1 correctness score."""
        return cls(
            value=1.0 if correct else 0.0, correct=correct, detail=detail, usage=usage or Usage()
        )


class CodeReport(BaseModel):
    """What running a program against its tests gave."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    passed: int
    total: int
    detail: str = ""

    @property
    def all_passed(self) -> bool:
        return self.total > 0 and self.passed == self.total


CodeRunner = Callable[[str, Sequence[str | TestCase], float, int], Awaitable[CodeReport]]
"""``runner(code, tests, timeout_s, memory_mb)``: run ``code`` against each test (a code
string, or an ``io`` :class:`~archon.values.TestCase`), sandboxed."""


@dataclass(frozen=True)
class MetricContext:
    """What a metric may use: a model client and limits for judges, a code runner, a cache.

    The metric's narrow view of the run environment (a metric that runs programs needs no
    client): evaluation builds it from its :class:`~archon.runtime.RunEnv` with :meth:`of`.
    """

    client: ModelClient | None
    limits: Limits
    runner: CodeRunner
    cache: CallCache | None = None
    seed: int = 0

    @classmethod
    def of(
        cls, env: RunEnv, runner: CodeRunner, *, client: ModelClient | None = None
    ) -> MetricContext:
        """The context of an evaluation in ``env``; ``client`` (a judge's) replaces the
        environment's."""
        return cls(
            client=client or env.client,
            limits=env.limits,
            runner=runner,
            cache=env.cache,
            seed=env.seed,
        )

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """One judge call through the shared limits and the cache."""
        if self.client is None:
            raise MetricError(
                f"this metric calls a model ({request.model}) but no client was given"
            )
        key = cache_key(request, 0, request.seed if request.seed is not None else self.seed)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return hit.model_copy(update={"usage": Usage(), "cached": True})
        client = self.client
        response = await self.limits.call(request.model, lambda: client.complete(request))
        if self.cache is not None:
            self.cache.put(key, request.model, response)
        return response

    async def ask(
        self, model: str, prompt: str, *, max_tokens: int, system: str | None = None
    ) -> tuple[str, Usage]:
        """Send one user prompt to ``model`` at temperature 0; return its text and usage."""
        messages = (Message(role="system", content=system),) if system else ()
        request = CompletionRequest(
            model=model,
            messages=(*messages, Message(role="user", content=prompt)),
            temperature=0.0,
            max_tokens=max_tokens,
            seed=self.seed,
        )
        response = await self.complete(request)
        text = response.completions[0].text if response.completions else ""
        return text, response.usage


class Metric(Protocol):
    """Scores answers to items. ``needs_model`` metrics call a judge through the context."""

    @property
    def name(self) -> str: ...

    @property
    def needs_model(self) -> bool: ...

    async def score(self, item: EvalItem, answers: Sequence[str], ctx: MetricContext) -> Score:
        """Score ``answers`` (one per user turn; the last is the final answer) for ``item``."""
        ...


class MetricOptions(BaseModel):
    """Settings metrics are built with (from the CLI or :func:`~archon.eval.evaluate`).

    Attributes:
        judge_model: model of the LLM-judge metrics.
        parser_model: optional model that extracts an answer the rules cannot parse
            (MixEval's official grader does this with an LLM).
        judge_max_tokens: token limit of each judge call.
        timeout_s: wall limit of one code execution.
        memory_mb: memory limit of one code execution.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    judge_model: str | None = None
    parser_model: str | None = None
    judge_max_tokens: int = Field(512, ge=1)
    timeout_s: float = Field(10.0, gt=0.0)
    memory_mb: int = Field(1024, ge=16)
