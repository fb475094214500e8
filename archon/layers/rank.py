"""``rank``: order candidates with a judge model and keep the best ``top_k``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import MappingProxyType
from typing import ClassVar, Literal

from pydantic import Field

from archon.layers._calls import (
    candidates_of,
    complete_all,
    first_logprob,
    first_text,
    judge_request,
)
from archon.layers.answers import parse_preference, parse_ranking, parse_score, parse_verdict
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
from archon.layers.prompts import build_messages, number_candidates, query_text, render, template
from archon.values import Candidate, Candidates, CompletionResponse, Message, Payload

SYSTEM_PROMPT = "You are a fair, strict judge of answer quality. Position and length do not matter."
"""Default system prompt of the judge (all modes)."""

LISTWISE_PROMPT = """Rank the {n} numbered answers below to the user's query, best first.

Query:
{query}

Answers:
{candidates}

Think briefly if needed, then end with one line of the form
Ranking: [2] > [1] > [3]
naming every answer exactly once."""
"""``mode="listwise"``: one call, the reply is parsed as a permutation."""

PAIRWISE_PROMPT = """Which of the two answers below better answers the user's query?

Query:
{query}

Answer A:
{candidate_a}

Answer B:
{candidate_b}

Reply with "Better: A" or "Better: B"."""
"""``mode="pairwise"``: one call per ordered pair (``{candidate_a}``, ``{candidate_b}``)."""

SCORE_PROMPT = """Rate how well the answer below answers the user's query, from 1 (useless or
wrong) to 10 (fully correct and helpful).

Query:
{query}

Answer:
{candidate}

End with one line of the form "Score: N"."""
"""``mode="score"``: one call per candidate, a 1-10 score."""

YES_NO_PROMPT = """Is the answer below a correct and helpful answer to the user's query?

Query:
{query}

Answer:
{candidate}

Reply with one word: Yes or No."""
"""``mode="score"`` with ``logprobs=true``: the score is the probability of "Yes"."""


class RankParams(JudgeParams):
    """Listwise (one prompt, a permutation), pairwise (round robin, both orders) or score."""

    top_k: int = Field(3, ge=1, le=1024)
    mode: Literal["listwise", "pairwise", "score"] = "listwise"
    use_critiques: bool = True
    logprobs: bool = False
    """Score mode: ask a Yes/No question and score by the probability of "Yes" (needs a
    model that reports log-probabilities; falls back to the stated verdict)."""


class Rank(Layer[RankParams]):
    """Order candidates with a judge model; keep the best ``top_k``."""

    kind: ClassVar[str] = "rank"
    Params = RankParams
    consumes = (Candidates,)
    produces = Candidates
    prompts = MappingProxyType(
        {
            "system": SYSTEM_PROMPT,
            "listwise": LISTWISE_PROMPT,
            "pairwise": PAIRWISE_PROMPT,
            "score": SCORE_PROMPT,
            "score_logprobs": YES_NO_PROMPT,
        }
    )

    @classmethod
    def estimate(
        cls, params: RankParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        n, tokens = total_items(inputs), max_tokens_of(inputs)
        if n <= 1:
            calls, per_call_in = 0, 0
        elif params.mode == "listwise":
            calls, per_call_in = 1, prompt_tokens(query_tokens, n * tokens)
        elif params.mode == "pairwise":
            calls, per_call_in = n * (n - 1), prompt_tokens(query_tokens, 2 * tokens)
        else:
            calls, per_call_in = n, prompt_tokens(query_tokens, tokens)
        return LayerEstimate(
            output=Flow(items=min(n, params.top_k), tokens=tokens),
            calls=(
                CallEstimate(params.model, calls, calls * per_call_in, calls * params.max_tokens),
            ),
        )

    async def run(
        self, ctx: LayerContext, params: RankParams, inputs: Sequence[Payload]
    ) -> Payload:
        candidates = candidates_of(inputs)
        if len(candidates) <= 1:
            return Candidates(items=candidates[: params.top_k])
        if params.mode == "listwise":
            ordered = await _listwise(ctx, params, candidates)
        elif params.mode == "pairwise":
            ordered = await _pairwise(ctx, params, candidates)
        else:
            ordered = await _by_score(ctx, params, candidates)
        return Candidates(items=tuple(ordered[: params.top_k]))


def _messages(params: RankParams, user: str) -> tuple[Message, ...]:
    return build_messages(user, system=params.system_prompt, default_system=SYSTEM_PROMPT)


def _shown(candidate: Candidate, params: RankParams) -> str:
    if params.use_critiques and candidate.critique:
        return f"{candidate.text}\n\nCritique: {candidate.critique}"
    return candidate.text


async def _listwise(
    ctx: LayerContext, params: RankParams, candidates: Sequence[Candidate]
) -> list[Candidate]:
    user = render(
        template(params.prompt, LISTWISE_PROMPT),
        query=query_text(ctx.query),
        candidates=number_candidates(candidates, critiques=params.use_critiques),
        n=len(candidates),
    )
    (response,) = await complete_all(ctx, [judge_request(params, _messages(params, user))])
    ranking = parse_ranking(first_text(response), len(candidates))
    if ranking is None:
        ctx.warn("could not parse a ranking from the judge; kept the input order")
        return list(candidates)
    if not ranking.complete:
        ctx.warn("the judge ranked only some candidates; the others follow in input order")
    return [candidates[i] for i in ranking.order]


async def _pairwise(
    ctx: LayerContext, params: RankParams, candidates: Sequence[Candidate]
) -> list[Candidate]:
    """Round robin over ordered pairs: each pair is judged in both orders (position bias)."""
    pairs = [(i, j) for i in range(len(candidates)) for j in range(len(candidates)) if i != j]
    query = query_text(ctx.query)
    prompt = template(params.prompt, PAIRWISE_PROMPT)
    requests = [
        judge_request(
            params,
            _messages(
                params,
                render(
                    prompt,
                    query=query,
                    candidate_a=_shown(candidates[i], params),
                    candidate_b=_shown(candidates[j], params),
                ),
            ),
        )
        for i, j in pairs
    ]
    wins = [0.0] * len(candidates)
    unparsed = 0
    for (i, j), response in zip(pairs, await complete_all(ctx, requests), strict=True):
        preference = parse_preference(first_text(response))
        if preference is None:
            unparsed += 1
            wins[i] += 0.5
            wins[j] += 0.5
        else:
            wins[i if preference == "A" else j] += 1.0
    if unparsed:
        ctx.warn(f"{unparsed} of {len(pairs)} pairwise judgements unparsable; counted as ties")
    total = 2 * (len(candidates) - 1)
    order = sorted(range(len(candidates)), key=lambda k: -wins[k])
    return [candidates[k].model_copy(update={"score": wins[k] / total}) for k in order]


async def _by_score(
    ctx: LayerContext, params: RankParams, candidates: Sequence[Candidate]
) -> list[Candidate]:
    default = YES_NO_PROMPT if params.logprobs else SCORE_PROMPT
    prompt = template(params.prompt, default)
    query = query_text(ctx.query)
    requests = [
        judge_request(
            params,
            _messages(params, render(prompt, query=query, candidate=_shown(c, params))),
            logprobs=params.logprobs,
        )
        for c in candidates
    ]
    scores = [response_score(r) for r in await complete_all(ctx, requests)]
    missing = sum(score is None for score in scores)
    if missing:
        ctx.warn(f"{missing} of {len(scores)} scores unparsable; those candidates rank last")
    keys = [-1.0 if score is None else score for score in scores]
    order = sorted(range(len(candidates)), key=lambda k: -keys[k])
    return [candidates[k].model_copy(update={"score": scores[k]}) for k in order]


def response_score(response: CompletionResponse) -> float | None:
    """A judge response as a score in ``[0, 1]``, or None when it holds none.

    A Yes/No reply with a reported log-probability scores ``P(Yes)``: ``exp(logprob)`` for
    "Yes", ``1 - exp(logprob)`` for "No" (the mean token log-probability of a one-word reply
    is that word's). Otherwise a numeric score (``Score: 7`` -> 0.7), else the verdict
    (1.0 / 0.0).
    """
    text = first_text(response)
    verdict = parse_verdict(text)
    logprob = first_logprob(response)
    short = len(text.split()) <= 3
    if verdict is not None and logprob is not None and short:
        p = min(1.0, math.exp(logprob))
        return p if verdict else 1.0 - p
    score = parse_score(text)
    if score is not None:
        return score
    if verdict is not None:
        return 1.0 if verdict else 0.0
    return None
