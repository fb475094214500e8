"""``likelihood``: score candidates by a model's mean token log-probability, generating nothing.

Each candidate is sent as the assistant's reply to the query with ``score_only=True``: the
backend evaluates the prompt and the candidate (prefill only) and reports the mean
log-probability of the candidate's tokens. It is a zero-generation verifier signal
(``logprob``), cheap next to a judge call, and a model cannot argue with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import MappingProxyType
from typing import ClassVar

from pydantic import Field

from archon.errors import ArchonError
from archon.layers._calls import candidates_of, kept, top
from archon.layers.base import (
    CallEstimate,
    Flow,
    Layer,
    LayerContext,
    LayerEstimate,
    LayerParams,
    max_tokens_of,
    prompt_tokens,
    total_items,
)
from archon.layers.common import TopK
from archon.layers.generate import DEFAULT_SYSTEM_PROMPT
from archon.layers.prompts import QUERY_TEMPLATE, answer_messages
from archon.values import Candidate, Candidates, CompletionRequest, CompletionResponse, Payload

PROMPT_TEMPLATE = QUERY_TEMPLATE
"""The user turn the candidate answers (a ``prompt`` override may wrap the query)."""


class LikelihoodParams(LayerParams):
    """``model`` scores each candidate as its own reply to the (optionally wrapped) query.

    Give the same ``prompt`` and ``system_prompt`` as the generator for the likelihood of
    the candidate in the context it was sampled in.
    """

    model: str = Field(min_length=1)
    prompt: str | None = None
    system_prompt: str | None = None
    top_k: TopK = None


class Likelihood(Layer[LikelihoodParams]):
    """Order candidates by their mean token log-probability under ``model`` (no generation).

    Records the ``logprob`` signal; ``score`` is ``exp(logprob)``, the geometric mean
    token probability. Backends that cannot score text leave the input order (warning).
    """

    kind: ClassVar[str] = "likelihood"
    Params = LikelihoodParams
    consumes = (Candidates,)
    produces = Candidates
    prompts = MappingProxyType({"system": DEFAULT_SYSTEM_PROMPT, "user": PROMPT_TEMPLATE})

    @classmethod
    def estimate(
        cls, params: LikelihoodParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        n, tokens = total_items(inputs), max_tokens_of(inputs)
        keep = kept(n, params.top_k)
        tokens_in = n * prompt_tokens(query_tokens, tokens)
        return LayerEstimate(
            output=Flow(items=keep, tokens=tokens),
            calls=(CallEstimate(params.model, n, tokens_in, 0),),
        )

    async def run(
        self, ctx: LayerContext, params: LikelihoodParams, inputs: Sequence[Payload]
    ) -> Payload:
        candidates = candidates_of(inputs)
        if not candidates:
            return Candidates()
        messages = answer_messages(
            ctx.query,
            params.prompt,
            system=params.system_prompt,
            default_system=DEFAULT_SYSTEM_PROMPT,
        )
        requests = [
            CompletionRequest(
                model=params.model,
                messages=messages,
                assistant_prefix=c.text,
                score_only=True,
                max_tokens=1,  # nothing is generated; keeps the budget reservation small
            )
            for c in candidates
            if c.text
        ]
        scores = await _scores(ctx, params.model, requests)
        by_text = dict(zip((r.assistant_prefix for r in requests), scores, strict=True))
        logprobs = [by_text.get(c.text) for c in candidates]
        ranked = _ranked(candidates, logprobs)
        return Candidates(items=top(ranked, params.top_k))


async def _scores(
    ctx: LayerContext, model: str, requests: Sequence[CompletionRequest]
) -> list[float | None]:
    """Mean token log-probability per request; None where the backend gave none."""
    # One gather over coroutines (no task of our own); failures are returned so that a
    # backend that cannot score costs one warning instead of the run.
    import asyncio  # loaded by whatever runs this; not on the import path of `archon check`

    results = await asyncio.gather(*(ctx.complete(r) for r in requests), return_exceptions=True)
    scores: list[float | None] = []
    reasons: list[str] = []
    for result in results:
        if isinstance(result, BaseException):
            if not cannot_score(result):
                raise result
            reasons.append(str(result))
            scores.append(None)
        else:
            score = scored_logprob(result)
            if score is None:
                reasons.append("the reply carried no log-probability of the given text")
            scores.append(score)
    if reasons:
        ctx.warn(
            f"{model} could not score {len(reasons)} of {len(requests)} candidates"
            f" ({reasons[0]}); they follow the scored ones in input order, with no logprob"
        )
    return scores


def cannot_score(error: BaseException) -> bool:
    """Whether ``error`` says the backend cannot score this text (rather than a real failure).

    Backends without prompt log-probabilities raise a non-retryable ``ModelCallError``
    (layers may not import the runtime, so it is recognised by its ``retryable`` and
    ``status`` attributes). Not swallowed: budget errors and cancellation (no such flag),
    retryable failures that persisted (``RetriesExhausted``, caused by a retryable error)
    and authentication failures (401/403), which must stop the run.
    """
    if not isinstance(error, ArchonError) or getattr(error, "retryable", None) is not False:
        return False
    if getattr(error.__cause__, "retryable", False):
        return False
    return getattr(error, "status", None) not in (401, 403)


def scored_logprob(response: CompletionResponse) -> float | None:
    """The mean log-probability of a ``score_only`` reply, or None when there is none.

    A reply with text means the backend generated instead of scoring: its log-probability
    would be that of other text, so it is not used.
    """
    if not response.completions:
        return None
    completion = response.completions[0]
    if completion.text or completion.logprob is None or not math.isfinite(completion.logprob):
        return None
    return min(0.0, completion.logprob)


def _ranked(candidates: Sequence[Candidate], logprobs: Sequence[float | None]) -> list[Candidate]:
    """Scored candidates by log-probability (stable), then the unscored in input order."""
    scored = [
        c.with_signal("logprob", lp).model_copy(update={"score": math.exp(lp)})
        for c, lp in zip(candidates, logprobs, strict=True)
        if lp is not None
    ]
    scored.sort(key=lambda c: -(c.signal("logprob") or 0.0))
    rest = [c for c, lp in zip(candidates, logprobs, strict=True) if lp is None]
    return scored + rest
