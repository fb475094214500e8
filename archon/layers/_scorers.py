"""Process scorers: how good is the newest step of a partial answer, in ``[0, 1]``.

Three implementations of :class:`ProcessScorer`, chosen by the ``scorer`` parameter:

* ``self_eval`` -- the model (or a ``judge`` model) is asked whether the partial solution is
  correct so far; the score is P(Yes) = ``exp(logprob)`` of the assistant prefix ``Yes``,
  scored without generating (``score_only``). On a backend that cannot score a prefix (it
  raises, or reports no logprob) the scorer falls back, for the rest of the run, to
  generating a short reply: P(Yes) from its logprob when reported (``exp(lp)`` for Yes,
  ``1 - exp(lp)`` for No), else 1 or 0 from the parsed verdict, else 0.5 (warning).
* ``logprob`` -- the step's own mean token probability ``exp(mean logprob)``, reported with
  the expansion (no extra call; 0.5 with a warning when the backend reports none).
* ``prm`` -- an external process reward model over HTTP: ``POST prm_url`` with
  ``{"question": str, "steps": [str, ...]}``, answered by ``{"scores": [float, ...]}`` (one
  score in ``[0, 1]`` per step; the last is the newest step's). Sent through
  ``ctx.http_json`` (limits, timeout, retries); not a model call, so not metered. A reply of
  the wrong shape scores 0.5 (warning).

Private to the package (the leading underscore keeps it out of the kind scan).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from archon.errors import ArchonError
from archon.layers._calls import complete_all, gather_all
from archon.layers._steps import Partial, StepSearchParams, request_tokens
from archon.layers.answers import parse_verdict
from archon.layers.base import LayerContext
from archon.layers.prompts import build_messages, query_text, render
from archon.values import CompletionRequest, CompletionResponse

SELF_EVAL_SYSTEM_PROMPT = (
    "You check solutions to problems step by step. Answer with one word: Yes or No."
)
SELF_EVAL_PROMPT = (
    "Problem:\n{query}\n\nPartial solution:\n{steps}\n\n"
    "Is every step of this partial solution correct so far? Answer Yes or No."
)
NEUTRAL = 0.5
"""The score given when a scorer cannot read its evidence."""


class ProcessScorer(Protocol):
    """Scores the newest step of partial answers. One instance per layer run."""

    def plan(self, expansions: Sequence[CompletionRequest]) -> tuple[int, int]:
        """Upper bound (model calls, tokens) of scoring the results of ``expansions``."""
        ...

    async def score(self, ctx: LayerContext, partials: Sequence[Partial]) -> list[float]:
        """One score in ``[0, 1]`` per partial, for its newest step."""
        ...

    def problems(self) -> list[str]:
        """Warnings about evidence the scorer could not read, for ``ctx.warn``."""
        ...


def make_scorer(ctx: LayerContext, params: StepSearchParams) -> ProcessScorer:
    """The scorer ``params.scorer`` names, for one run."""
    if params.scorer == "logprob":
        return LogprobScorer()
    if params.scorer == "prm":
        assert params.prm_url is not None
        return PrmScorer(params.prm_url, query_text(ctx.query))
    return SelfEvalScorer(params, query_text(ctx.query))


class SelfEvalScorer:
    """P(Yes) that the partial solution is correct so far, from the model or a judge."""

    def __init__(self, params: StepSearchParams, question: str) -> None:
        self._params = params
        self._question = question
        self._judge = params.judge or params.model
        self._template = params.judge_prompt or SELF_EVAL_PROMPT
        self._mode: str | None = None  # "score_only" or "generate", decided by a probe
        self._unparsed = 0
        self._fallback_reason = ""

    def plan(self, expansions: Sequence[CompletionRequest]) -> tuple[int, int]:
        overhead = len(self._template.encode()) // 3 + 64
        per_call = [request_tokens(r) + 2 * (r.max_tokens or 0) + overhead for r in expansions]
        probe = 1 if self._mode is None and expansions else 0
        return len(expansions) + probe, sum(per_call) + probe * max(per_call, default=0)

    def _request(self, partial: Partial, score_only: bool) -> CompletionRequest:
        steps = self._params.delimiter.join(partial.steps)
        user = render(self._template, query=self._question, steps=steps)
        messages = build_messages(user, system=None, default_system=SELF_EVAL_SYSTEM_PROMPT)
        if score_only:
            return CompletionRequest(
                model=self._judge,
                messages=messages,
                max_tokens=1,
                assistant_prefix="Yes",
                score_only=True,
            )
        return CompletionRequest(
            model=self._judge, messages=messages, max_tokens=8, temperature=0.0, logprobs=True
        )

    async def score(self, ctx: LayerContext, partials: Sequence[Partial]) -> list[float]:
        if not partials:
            return []
        first: list[float] = []
        if self._mode is None:
            probed = await self._probe(ctx, partials[0])
            first = [probed] if probed is not None else []
        rest = partials[len(first) :]
        score_only = self._mode == "score_only"
        responses = await complete_all(ctx, [self._request(p, score_only) for p in rest])
        read = self._from_prefix if score_only else self._from_reply
        return first + [read(r) for r in responses]

    async def _probe(self, ctx: LayerContext, partial: Partial) -> float | None:
        """Score one partial with ``score_only``; on failure switch to generating."""
        try:
            response = await ctx.complete(self._request(partial, score_only=True))
        except ArchonError as error:  # the backend cannot score a prefix
            self._fallback_reason = str(error) or type(error).__name__
            response = None
        logprob = response.completions[0].logprob if response and response.completions else None
        if logprob is None:
            self._mode = "generate"
            self._fallback_reason = self._fallback_reason or "no logprob reported"
            return None
        self._mode = "score_only"
        return _probability(logprob)

    def _from_prefix(self, response: CompletionResponse) -> float:
        logprob = response.completions[0].logprob if response.completions else None
        if logprob is None:
            self._unparsed += 1
            return NEUTRAL
        return _probability(logprob)

    def _from_reply(self, response: CompletionResponse) -> float:
        completion = response.completions[0] if response.completions else None
        verdict = parse_verdict(completion.text) if completion is not None else None
        if verdict is None:
            self._unparsed += 1
            return NEUTRAL
        logprob = completion.logprob if completion is not None else None
        if logprob is None:
            return 1.0 if verdict else 0.0
        p = _probability(logprob)
        return p if verdict else 1.0 - p

    def problems(self) -> list[str]:
        found = []
        if self._mode == "generate":
            found.append(
                f"{self._judge} cannot score a prefix ({self._fallback_reason});"
                " self-evaluation generated Yes/No replies instead"
            )
        if self._unparsed:
            found.append(f"{self._unparsed} self-evaluations were unreadable; scored 0.5")
        return found


class LogprobScorer:
    """The newest step's mean token probability, as reported with the expansion."""

    def __init__(self) -> None:
        self._missing = 0

    def plan(self, expansions: Sequence[CompletionRequest]) -> tuple[int, int]:
        return 0, 0

    async def score(self, ctx: LayerContext, partials: Sequence[Partial]) -> list[float]:
        scores = []
        for partial in partials:
            logprob = partial.logprobs[-1] if partial.logprobs else None
            if logprob is None:
                self._missing += 1
                scores.append(NEUTRAL)
            else:
                scores.append(_probability(logprob))
        return scores

    def problems(self) -> list[str]:
        if not self._missing:
            return []
        return [f"{self._missing} steps came without a logprob (the backend reports none); 0.5"]


class PrmScorer:
    """An external process reward model behind ``POST url {question, steps} -> {scores}``."""

    def __init__(self, url: str, question: str) -> None:
        self._url = url
        self._question = question
        self._malformed = 0
        self._example = ""

    def plan(self, expansions: Sequence[CompletionRequest]) -> tuple[int, int]:
        return 0, 0

    async def score(self, ctx: LayerContext, partials: Sequence[Partial]) -> list[float]:
        bodies = [{"question": self._question, "steps": list(p.steps)} for p in partials]
        replies = await gather_all([ctx.http_json(self._url, body) for body in bodies])
        return [self._read(reply, len(p.steps)) for reply, p in zip(replies, partials, strict=True)]

    def _read(self, reply: object, steps: int) -> float:
        scores = reply.get("scores") if isinstance(reply, dict) else None
        valid = (
            isinstance(scores, list) and len(scores) == steps and all(_is_unit(s) for s in scores)
        )
        if not valid:
            self._malformed += 1
            self._example = self._example or repr(reply)[:120]
            return NEUTRAL
        assert isinstance(scores, list)
        return float(scores[-1])

    def problems(self) -> list[str]:
        if not self._malformed:
            return []
        return [
            f"{self._malformed} replies of the PRM at {self._url} were not"
            f' {{"scores": [one number in [0, 1] per step]}} (e.g. {self._example}); 0.5'
        ]


def _is_unit(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0.0 <= value <= 1.0
    )


def _probability(logprob: float) -> float:
    """``exp(logprob)`` clipped to ``[0, 1]`` (a mean log-probability is at most 0)."""
    if math.isnan(logprob):
        return NEUTRAL
    return min(1.0, math.exp(min(0.0, logprob)))
