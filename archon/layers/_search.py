"""One round of step-level search (expand, score, check), its cost model and its output.

Shared by ``beam_search`` and ``particle_filter``; private to the package (the leading
underscore keeps it out of the kind scan).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType

from archon.layers._scorers import SELF_EVAL_PROMPT, SELF_EVAL_SYSTEM_PROMPT, ProcessScorer
from archon.layers._step_budget import RoundBudget
from archon.layers._steps import (
    STEP_PROMPT,
    STEP_SYSTEM_PROMPT,
    Expander,
    Partial,
    StepSearchParams,
    apply_check,
    request_tokens,
    to_candidates,
)
from archon.layers.base import (
    CallEstimate,
    Flow,
    LayerContext,
    LayerEstimate,
    prompt_tokens,
)
from archon.values import Candidates

STEP_SEARCH_PROMPTS = MappingProxyType(
    {
        "system": STEP_SYSTEM_PROMPT,
        "user": STEP_PROMPT,
        "self_eval_system": SELF_EVAL_SYSTEM_PROMPT,
        "self_eval": SELF_EVAL_PROMPT,
    }
)
"""The default prompts of a step search: the expansion and the self-evaluation scorer."""

SELF_EVAL_OUT_TOKENS = 8
"""Completion tokens of one self-evaluation (a short Yes/No reply in the fallback)."""


class StepSearch:
    """The state of one search run: expansion seeds, the scorer, the budget gate."""

    def __init__(self, ctx: LayerContext, params: StepSearchParams, scorer: ProcessScorer) -> None:
        self._ctx = ctx
        self._params = params
        self._scorer = scorer
        self._expander = Expander(ctx, params)
        self._budget = RoundBudget()
        self.rounds = 0
        self.stopped: str | None = None
        """Why the search stopped before its natural end (budget), or None."""

    async def round(self, partials: Sequence[Partial]) -> list[Partial] | None:
        """Each of ``partials`` extended by one scored step, or None (and ``stopped`` set)
        when the round's upper bound does not fit in what the query may still spend."""
        ctx, params = self._ctx, self._params
        plan = [self._expander.request(p, k) for k, p in enumerate(partials)]
        score_calls, score_tokens = self._scorer.plan(plan)
        tokens = sum(request_tokens(r) for r in plan) + score_tokens
        refusal = self._budget.refusal(ctx, len(plan) + score_calls, tokens)
        if refusal is not None:
            self.stopped = refusal
            ctx.warn(f"budget: stopped before step {self.rounds + 1}: {refusal}")
            return None
        children = await self._expander.expand(ctx, partials)
        fresh = [i for i, c in enumerate(children) if len(c.steps) > len(partials[i].steps)]
        scores = await self._scorer.score(ctx, [children[i] for i in fresh])
        for i, score in zip(fresh, scores, strict=True):
            children[i] = children[i].scored(score)
        self._budget.spent(ctx)
        self.rounds += 1
        return [apply_check(c, params) for c in children]

    def finish(
        self, completed: Sequence[Partial], unfinished: Sequence[Partial], *, limit: int
    ) -> Candidates:
        """The output candidates, after reporting what the scorer could not read."""
        for problem in self._scorer.problems():
            self._ctx.warn(problem)
        return to_candidates(self._ctx, self._params, completed, unfinished, limit)


def step_estimate(
    params: StepSearchParams, query_tokens: int, per_round: int, *, items: int
) -> LayerEstimate:
    """The static upper bound of a search of ``max_steps`` rounds of ``per_round``
    expansions: every expansion sees the query and at most ``max_steps`` steps of
    ``step_tokens``; ``self_eval`` adds one judge call per expansion and one probe."""
    rounds = params.max_steps
    answer = params.max_steps * params.step_tokens
    expansions = per_round * rounds
    calls = [
        CallEstimate(
            model=params.model,
            calls=expansions,
            tokens_in=expansions * prompt_tokens(query_tokens, answer),
            tokens_out=expansions * params.step_tokens,
        )
    ]
    if params.scorer == "self_eval":
        judged = expansions + 1
        calls.append(
            CallEstimate(
                model=params.judge or params.model,
                calls=judged,
                tokens_in=judged * prompt_tokens(query_tokens, answer, overhead=160),
                tokens_out=judged * SELF_EVAL_OUT_TOKENS,
            )
        )
    return LayerEstimate(output=Flow(items=items, tokens=answer), calls=tuple(calls))
