"""``vote``: majority vote / self-consistency over answers extracted from candidates."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from archon.layers._calls import candidates_of
from archon.layers.answers import ExtractMethod, extract_answer, tally
from archon.layers.base import (
    Flow,
    Layer,
    LayerContext,
    LayerEstimate,
    LayerParams,
    max_tokens_of,
    total_items,
)
from archon.values import Candidate, Candidates, Payload


class VoteParams(LayerParams):
    """How answers are extracted and compared; ties break by first appearance."""

    extract: ExtractMethod = "auto"
    weighted: bool = False


class Vote(Layer[VoteParams]):
    """Keep the candidate whose extracted answer the most candidates agree on."""

    kind: ClassVar[str] = "vote"
    Params = VoteParams
    consumes = (Candidates,)
    produces = Candidates

    @classmethod
    def estimate(
        cls, params: VoteParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        n, tokens = total_items(inputs), max_tokens_of(inputs)
        return LayerEstimate(output=Flow(items=min(n, 1), tokens=tokens))

    async def run(
        self, ctx: LayerContext, params: VoteParams, inputs: Sequence[Payload]
    ) -> Payload:
        candidates = candidates_of(inputs)
        if not candidates:
            return Candidates()
        answers = [extract_answer(c.text, params.extract) for c in candidates]
        weights = vote_weights(ctx, candidates) if params.weighted else None
        result = tally(answers, weights)
        if result.winner is None:
            ctx.warn(
                f"no answer could be extracted ({params.extract}) from any candidate;"
                " kept the first candidate"
            )
            return Candidates(items=(candidates[0],))
        missing = sum(a is None for a in answers)
        if missing:
            ctx.warn(f"no answer extracted from {missing} of {len(answers)} candidates")
        first = result.groups[result.winner][0]
        winner = candidates[first].model_copy(update={"score": result.share})
        return Candidates(items=(winner,))


def vote_weights(ctx: LayerContext, candidates: Sequence[Candidate]) -> list[float]:
    """``exp(logprob)`` per candidate (the mean token probability); 1.0 where unknown."""
    unknown = sum(c.logprob is None for c in candidates)
    if unknown:
        ctx.warn(f"{unknown} candidates have no logprob; they vote with weight 1")
    return [1.0 if c.logprob is None else math.exp(c.logprob) for c in candidates]
