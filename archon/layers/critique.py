"""``critique``: strengths and weaknesses for each candidate (Archon's critic layer)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from types import MappingProxyType
from typing import ClassVar, Literal

from archon.layers._calls import candidates_of, complete_all, first_text, judge_request
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
from archon.values import Candidate, Candidates, Message, Payload

SYSTEM_PROMPT = (
    "You are a careful reviewer. You point out what is right and what is wrong in answers;"
    " you never rewrite them."
)
"""Default system prompt of the critic."""

EACH_PROMPT = """Review the answer below to the user's query.

Query:
{query}

Answer:
{candidate}

List the answer's strengths and weaknesses as two short bullet lists, headed
"Strengths:" and "Weaknesses:". Be specific and concise."""
"""``mode="each"``: one call per candidate (``{query}``, ``{candidate}``)."""

ALL_PROMPT = """Review each of the {n} numbered answers below to the user's query.

Query:
{query}

Answers:
{candidates}

For each answer write a section that starts with its number in brackets on its own line,
e.g. "[1]", followed by two short bullet lists headed "Strengths:" and "Weaknesses:"."""
"""``mode="all"``: one call for all candidates (``{query}``, ``{candidates}``, ``{n}``)."""

_SECTION = re.compile(r"^\W*(?:answer|candidate|response)?\s*\[?(\d+)\]?\W*$", re.I | re.M)


class CritiqueParams(JudgeParams):
    """``mode="each"`` makes one call per candidate; ``"all"`` one call for all of them."""

    mode: Literal["each", "all"] = "each"


class Critique(Layer[CritiqueParams]):
    """Attach a critique (strengths and weaknesses) to each candidate."""

    kind: ClassVar[str] = "critique"
    Params = CritiqueParams
    consumes = (Candidates,)
    produces = Candidates
    prompts = MappingProxyType({"system": SYSTEM_PROMPT, "each": EACH_PROMPT, "all": ALL_PROMPT})

    @classmethod
    def estimate(
        cls, params: CritiqueParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        n, tokens = total_items(inputs), max_tokens_of(inputs)
        if params.mode == "each":
            calls = n
            tokens_in = n * prompt_tokens(query_tokens, tokens)
            tokens_out = n * params.max_tokens
        else:
            calls = 1 if n else 0
            tokens_in = prompt_tokens(query_tokens, n * tokens) if n else 0
            tokens_out = params.max_tokens if n else 0
        return LayerEstimate(
            output=Flow(items=n, tokens=tokens + params.max_tokens),
            calls=(CallEstimate(params.model, calls, tokens_in, tokens_out),),
        )

    async def run(
        self, ctx: LayerContext, params: CritiqueParams, inputs: Sequence[Payload]
    ) -> Payload:
        candidates = candidates_of(inputs)
        if not candidates:
            return Candidates()
        if params.mode == "each":
            critiques = await _critique_each(ctx, params, candidates)
        else:
            critiques = await _critique_all(ctx, params, candidates)
        return Candidates(
            items=tuple(
                c.model_copy(update={"critique": text})
                for c, text in zip(candidates, critiques, strict=True)
            )
        )


def _messages(params: CritiqueParams, user: str) -> tuple[Message, ...]:
    return build_messages(user, system=params.system_prompt, default_system=SYSTEM_PROMPT)


async def _critique_each(
    ctx: LayerContext, params: CritiqueParams, candidates: Sequence[Candidate]
) -> list[str | None]:
    query = query_text(ctx.query)
    prompt = template(params.prompt, EACH_PROMPT)
    requests = [
        judge_request(params, _messages(params, render(prompt, query=query, candidate=c.text)))
        for c in candidates
    ]
    texts = [first_text(r).strip() for r in await complete_all(ctx, requests)]
    if not all(texts):
        ctx.warn("critic returned an empty critique for some candidates; left them unset")
    return [text or None for text in texts]


async def _critique_all(
    ctx: LayerContext, params: CritiqueParams, candidates: Sequence[Candidate]
) -> list[str | None]:
    user = render(
        template(params.prompt, ALL_PROMPT),
        query=query_text(ctx.query),
        candidates=number_candidates(candidates),
        n=len(candidates),
    )
    (response,) = await complete_all(ctx, [judge_request(params, _messages(params, user))])
    text = first_text(response).strip()
    sections = split_sections(text, len(candidates))
    if sections is None:
        ctx.warn(
            "could not split the critique into one section per candidate;"
            " attached the whole critique to every candidate"
        )
        return [text or None] * len(candidates)
    return [section or None for section in sections]


def split_sections(text: str, n: int) -> list[str] | None:
    """Split a critique of ``n`` numbered answers into ``n`` sections, or None.

    A section starts at a line holding only its number (``[2]``, ``Answer 2:``). Returns
    None unless every number 1..n starts a section.
    """
    starts: dict[int, tuple[int, int]] = {}
    for match in _SECTION.finditer(text):
        number = int(match.group(1))
        if 1 <= number <= n and number not in starts:
            starts[number] = (match.start(), match.end())
    if len(starts) != n:
        return None
    bounds = sorted(starts.items(), key=lambda item: item[1][0])
    sections = [""] * n
    for position, (number, (_, end)) in enumerate(bounds):
        stop = bounds[position + 1][1][0] if position + 1 < n else len(text)
        sections[number - 1] = text[end:stop].strip()
    return sections
