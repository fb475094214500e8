"""``verify``: an LLM verifier that accepts or rejects each candidate."""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import MappingProxyType
from typing import ClassVar

from pydantic import Field

from archon.layers._calls import (
    candidates_of,
    complete_all,
    first_logprob,
    first_text,
    judge_request,
)
from archon.layers.answers import parse_score, parse_verdict
from archon.layers.base import (
    CallEstimate,
    Flow,
    Layer,
    LayerContext,
    LayerEstimate,
    max_tokens_of,
    prompt_tokens,
    total_items,
)
from archon.layers.common import JudgeParams
from archon.layers.prompts import build_messages, query_text, render, template
from archon.values import Candidate, Candidates, CompletionResponse, Payload

SYSTEM_PROMPT = (
    "You are a meticulous verifier. You check answers step by step and only accept an answer"
    " that is fully correct."
)
"""Default system prompt of the verifier."""

PROMPT_TEMPLATE = """Check whether the answer below correctly and completely answers the
user's query. Reason step by step about its correctness, then end with one line of the form
"Verdict: Yes" (correct) or "Verdict: No" (incorrect).

Query:
{query}

Answer:
{candidate}"""
"""One call per candidate (``{query}``, ``{candidate}``)."""


class VerifyParams(JudgeParams):
    """Keep candidates whose verdict score reaches ``threshold``; never none unless abstaining."""

    threshold: float = Field(0.5, ge=0.0, le=1.0)
    abstain: bool = False
    logprobs: bool = False
    """Ask for log-probabilities and use them as the confidence of the stated verdict."""


class Verify(Layer[VerifyParams]):
    """Check each candidate with reasoning; drop the rejected ones (keeps at least one)."""

    kind: ClassVar[str] = "verify"
    Params = VerifyParams
    consumes = (Candidates,)
    produces = Candidates
    is_filter: ClassVar[bool] = True
    prompts = MappingProxyType({"system": SYSTEM_PROMPT, "user": PROMPT_TEMPLATE})

    @classmethod
    def estimate(
        cls, params: VerifyParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        n, tokens = total_items(inputs), max_tokens_of(inputs)
        return LayerEstimate(
            output=Flow(items=n, tokens=tokens),
            calls=(
                CallEstimate(
                    params.model,
                    n,
                    n * prompt_tokens(query_tokens, tokens),
                    n * params.max_tokens,
                ),
            ),
        )

    async def run(
        self, ctx: LayerContext, params: VerifyParams, inputs: Sequence[Payload]
    ) -> Payload:
        candidates = candidates_of(inputs)
        if not candidates:
            return Candidates()
        query = query_text(ctx.query)
        prompt = template(params.prompt, PROMPT_TEMPLATE)
        requests = [
            judge_request(
                params,
                build_messages(
                    render(prompt, query=query, candidate=c.text),
                    system=params.system_prompt,
                    default_system=SYSTEM_PROMPT,
                ),
                logprobs=params.logprobs,
            )
            for c in candidates
        ]
        scores = [verdict_score(r) for r in await complete_all(ctx, requests)]
        judged = [_judged(c, params.model, s) for c, s in zip(candidates, scores, strict=True)]
        return Candidates(items=tuple(_select(ctx, params, judged, scores)))


def _judged(candidate: Candidate, model: str, score: float | None) -> Candidate:
    """The verdict as signals for ``combine``: ``judge`` and ``judge:<model>``."""
    if score is None:
        return candidate
    return candidate.with_signal("judge", score).with_signal(f"judge:{model}", score)


def verdict_score(response: CompletionResponse) -> float | None:
    """The verifier's confidence that the candidate is correct, in ``[0, 1]``, or None.

    The verdict (``Verdict: Yes`` -> 1.0, ``No`` -> 0.0); with a reported log-probability the
    confidence ``exp(logprob)`` of the reply is used instead (``p`` for Yes, ``1 - p`` for
    No). Without a verdict, a numeric score in the reply is used (``Score: 8`` -> 0.8).
    """
    text = first_text(response)
    verdict = parse_verdict(text)
    if verdict is None:
        return parse_score(text)
    logprob = first_logprob(response)
    if logprob is None:
        return 1.0 if verdict else 0.0
    p = min(1.0, math.exp(logprob))
    return p if verdict else 1.0 - p


def _select(
    ctx: LayerContext,
    params: VerifyParams,
    candidates: Sequence[Candidate],
    scores: Sequence[float | None],
) -> list[Candidate]:
    """Accepted candidates in input order; unparsable verdicts are kept (with a warning)."""
    scored = [c.model_copy(update={"score": s}) for c, s in zip(candidates, scores, strict=True)]
    unknown = sum(s is None for s in scores)
    if unknown:
        ctx.warn(f"{unknown} of {len(scores)} verdicts unparsable; kept those candidates")
    kept = [c for c in scored if c.score is None or c.score >= params.threshold]
    rejected = len(scored) - len(kept)
    if rejected:
        ctx.warn(f"verifier rejected {rejected} of {len(scored)} candidates")
    if kept or params.abstain:
        return kept
    best = max(range(len(scored)), key=lambda k: (scored[k].score or 0.0, -k))
    ctx.warn("verifier rejected every candidate; kept the highest-scoring one (abstain=false)")
    return [scored[best]]
