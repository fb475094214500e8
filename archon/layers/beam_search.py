"""``beam_search``: step-level beam search guided by a process scorer.

The search of Snell et al. (arXiv 2408.03314) and Hugging Face's search-and-learn: sample
``beam_width × expansions`` first steps, score them, keep the best ``beam_width``; then, each
round, extend every kept partial answer by ``expansions`` sampled steps (all concurrently),
score the new steps, and keep the best ``beam_width`` unfinished ones. Answers that finish
leave the beam for the completed pool. Identical partial answers are kept once (as
search-and-learn's ``filter_duplicates``), so the beam's width is spent on distinct ones.
The search stops when ``beam_width`` answers are
complete, the beam is empty, ``max_steps`` rounds are done, or the next round would not fit
in the query's budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field

from archon.layers._scorers import (
    make_scorer,
)
from archon.layers._search import STEP_SEARCH_PROMPTS, StepSearch, step_estimate
from archon.layers._steps import Partial, StepSearchParams, ranked
from archon.layers.base import Flow, Layer, LayerContext, LayerEstimate
from archon.values import Candidates, Payload


class BeamSearchParams(StepSearchParams):
    """Keep ``beam_width`` partial answers, extend each by ``expansions`` steps per round."""

    beam_width: int = Field(4, ge=1, le=256)
    expansions: int = Field(4, ge=1, le=256)


class BeamSearch(Layer[BeamSearchParams]):
    """Beam search over reasoning steps, scored by a process scorer; completed answers out."""

    kind: ClassVar[str] = "beam_search"
    Params = BeamSearchParams
    consumes = ()
    produces = Candidates
    prompts = STEP_SEARCH_PROMPTS

    @classmethod
    def estimate(
        cls, params: BeamSearchParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        per_round = params.beam_width * params.expansions
        return step_estimate(params, query_tokens, per_round, items=params.beam_width)

    async def run(
        self, ctx: LayerContext, params: BeamSearchParams, inputs: Sequence[Payload]
    ) -> Payload:
        search = StepSearch(ctx, params, make_scorer(ctx, params))
        completed: list[Partial] = []
        beam = [Partial()]
        for round_index in range(params.max_steps):
            if round_index == 0:  # the first round samples every first step from the root
                jobs = [Partial(origin=k) for k in range(params.beam_width * params.expansions)]
            else:
                jobs = [p for p in beam for _ in range(params.expansions)]
            children = await search.round(jobs)
            if children is None:  # the budget cannot pay for this round
                break
            completed = _unique([*completed, *(c for c in children if c.complete and not c.pruned)])
            beam = _unique(ranked([c for c in children if not c.complete], params.aggregate))
            beam = beam[: params.beam_width]
            if not beam or len(completed) >= params.beam_width:
                break
        return search.finish(completed, beam, limit=params.beam_width)


def _unique(partials: Sequence[Partial]) -> list[Partial]:
    """The first of each group of partials with the same steps."""
    seen: set[tuple[str, ...]] = set()
    kept = []
    for partial in partials:
        if partial.steps not in seen:
            seen.add(partial.steps)
            kept.append(partial)
    return kept
