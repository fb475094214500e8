"""``consensus``: every candidate's vote share, keeping all candidates (no model call).

``vote`` keeps only the winner. ``consensus`` groups the extracted answers the same way
(equivalent numbers, math expressions, choices, text) but keeps every candidate, largest
group first, and records the ``vote_share`` signal on each, so that a later ``combine`` can
weigh agreement against other evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from archon.layers._calls import candidates_of, reorder_estimate, top
from archon.layers.answers import ExtractMethod, extract_answer, group_answers
from archon.layers.base import (
    Flow,
    Layer,
    LayerContext,
    LayerEstimate,
    LayerParams,
)
from archon.layers.common import TopK
from archon.values import Candidate, Candidates, Payload


class ConsensusParams(LayerParams):
    """How answers are extracted and compared (as in ``vote``); ``top_k`` keeps the best."""

    extract: ExtractMethod = "auto"
    top_k: TopK = None


class Consensus(Layer[ConsensusParams]):
    """Order candidates by the share of candidates whose answer agrees with theirs.

    Records ``vote_share`` (0 for a candidate without an extractable answer) and sets
    ``score`` to it. Ties go to the group that appears first; within a group, input order.
    """

    kind: ClassVar[str] = "consensus"
    Params = ConsensusParams
    consumes = (Candidates,)
    produces = Candidates

    @classmethod
    def estimate(
        cls, params: ConsensusParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        return reorder_estimate(inputs, params.top_k)

    async def run(
        self, ctx: LayerContext, params: ConsensusParams, inputs: Sequence[Payload]
    ) -> Payload:
        candidates = candidates_of(inputs)
        if not candidates:
            return Candidates()
        answers = [extract_answer(c.text, params.extract) for c in candidates]
        missing = sum(a is None for a in answers)
        if missing:
            ctx.warn(
                f"no answer extracted ({params.extract}) from {missing} of {len(answers)}"
                " candidates; their vote share is 0"
            )
        ranked = consensus_order(candidates, answers)
        return Candidates(items=top(ranked, params.top_k))


def consensus_order(candidates: Sequence[Candidate], answers: list[str | None]) -> list[Candidate]:
    """Candidates with their ``vote_share``: largest group first, then those without answer."""
    n = len(candidates)
    groups = sorted(group_answers(answers), key=len, reverse=True)  # stable: first seen wins
    grouped = {k for group in groups for k in group}
    ordered = [(k, len(group) / n) for group in groups for k in group]
    ordered += [(k, 0.0) for k in range(n) if k not in grouped]
    return [
        candidates[k].with_signal("vote_share", share).model_copy(update={"score": share})
        for k, share in ordered
    ]
