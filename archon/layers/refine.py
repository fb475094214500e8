"""``refine``: Parallel-Distill-Refine over answers that cannot be executed.

Each round has two steps:

1. **distill**: one call to ``model`` reads the current candidates (at most ``max_drafts``
   of them, each clipped to ``draft_chars`` characters) and writes a short *workspace* of
   at most ``workspace_tokens`` tokens: the answers the drafts reach, where they agree and
   disagree, the mistakes spotted and the most promising approach, with no draft copied;
2. **refine**: each of ``models`` writes ``revisions`` complete, improved answers from the
   query and the workspace alone. The refiners never see the drafts, so their context
   stays bounded however many or long the drafts are.

The revisions are the candidates the next round distills. Before each round the layer
compares the round's upper bound with what the query may still spend and stops cleanly
(with a warning) when it does not fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import MappingProxyType
from typing import ClassVar

from pydantic import Field

from archon.layers._calls import (
    candidates_of,
    complete_all,
    ensemble,
    first_text,
    request,
    sampled,
)
from archon.layers._step_budget import RoundBudget
from archon.layers._steps import request_tokens
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
from archon.layers.common import SamplingParams
from archon.layers.prompts import (
    build_messages,
    last_user,
    number_candidates,
    query_text,
    render,
    template,
)
from archon.values import Candidate, Candidates, CompletionRequest, Message, Payload

DISTILL_SYSTEM_PROMPT = (
    "You are a careful analyst. You compare attempts at a problem and write brief notes"
    " that help someone solve it; you never write the final solution yourself."
)
"""System prompt of the distiller."""

SYSTEM_PROMPT = "You are a helpful assistant. Answer the user's request accurately."
"""System prompt of the refiners when neither the query nor ``system_prompt`` gives one."""

DISTILL_PROMPT = """Below are {n} draft answers to a query. Write a short workspace of notes
(at most about {words} words) for someone who will answer the query again and will see
your notes but not the drafts. Cover:
- the final answers the drafts reach, and how many drafts reach each;
- where the drafts agree and where they disagree;
- mistakes or unjustified steps you spot;
- the most promising approach, in a few lines.
Do not copy a draft's solution and do not write a final solution yourself: notes only.

Query:
{query}

Drafts:
{candidates}"""
"""The distill step (``{query}``, ``{candidates}``, ``{n}``, ``{words}``)."""

REFINE_PROMPT = """A reviewer compared several earlier attempts at the query below and
distilled them into the workspace of notes that follows (the attempts are not shown).
Use the notes as guidance, but check them rather than trust them: they may be wrong.
Write a complete, improved answer to the query from start to finish, in the format the
query asks for.

Workspace:
{workspace}

Query:
{query}"""
"""The refine step (``{query}``, ``{workspace}``). It replaces the user's last turn;
earlier turns of a conversation are kept."""

EMPTY_WORKSPACE = "(no notes)"
"""What the refiners see when the distiller wrote nothing."""

_CLIPPED = "\n[...]\n"
"""Marks the middle part of a draft left out of the distill prompt."""

_WORKSPACE_BYTES_PER_TOKEN = 6
"""Bytes per workspace token assumed when bounding a refine call before the workspace
exists (generous: English text averages about four)."""


class RefineParams(SamplingParams):
    """A distiller (``model``), the refiners (``models``), and how much each round does.

    ``prompt`` overrides the refine prompt and ``distill_prompt`` the distill prompt;
    ``system_prompt`` is the refiners' (the distiller keeps its own). The sampling knobs
    apply to the refiners; the distiller samples at temperature 0 and writes at most
    ``workspace_tokens`` tokens.
    """

    model: str = Field(min_length=1)
    """Writes the workspace (one call per round)."""
    models: tuple[str, ...] | None = Field(None, min_length=1)
    """The refiners, each writing ``revisions`` answers per round (None: ``model``)."""
    revisions: int = Field(2, ge=1, le=64)
    rounds: int = Field(1, ge=1, le=4)
    max_drafts: int = Field(4, ge=1, le=32)
    """The distiller reads at most this many candidates (the first ones, in input order)."""
    draft_chars: int = Field(4000, ge=200, le=100_000)
    """Each candidate the distiller reads is clipped to this many characters (its
    beginning and its end are kept)."""
    workspace_tokens: int = Field(256, ge=16, le=8192)
    temperature: float | None = Field(0.7, ge=0.0, le=2.0)
    keep_drafts: bool = False
    """Also output the input candidates, after the revisions."""
    distill_prompt: str | None = None
    """Override of the distill prompt (``prompt`` overrides the refine prompt)."""


class Refine(Layer[RefineParams]):
    """Refine candidates through a distilled workspace: drafts -> notes -> new answers.

    Output: the revisions of the last round that ran, ``models`` in listed order and
    ``revisions`` samples each, every one with ``source_node`` = this node, its
    ``sample_index`` and the signal ``refine_round`` (1-based); with ``keep_drafts`` the
    input candidates follow. When the budget stops the layer before its first round, the
    input candidates are returned unchanged.
    """

    kind: ClassVar[str] = "refine"
    Params = RefineParams
    consumes = (Candidates,)
    produces = Candidates
    prompts = MappingProxyType(
        {
            "distill_system": DISTILL_SYSTEM_PROMPT,
            "distill": DISTILL_PROMPT,
            "system": SYSTEM_PROMPT,
            "refine": REFINE_PROMPT,
        }
    )

    @classmethod
    def estimate(
        cls, params: RefineParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        n, tokens = total_items(inputs), max_tokens_of(inputs)
        per_round = params.revisions * len(refiners(params))
        shown = min(max(n, per_round if params.rounds > 1 else 0), params.max_drafts)
        # Later rounds read revisions; a clipped draft counts three characters per token,
        # as the budget meter counts prompts.
        later = params.max_tokens if params.rounds > 1 else 0
        draft = min(max(tokens, later), math.ceil(params.draft_chars / 3))
        distills = params.rounds
        distill_in = prompt_tokens(query_tokens, shown * draft)
        calls = [
            CallEstimate(
                params.model, distills, distills * distill_in, distills * params.workspace_tokens
            )
        ]
        each = params.rounds * params.revisions
        refine_in = prompt_tokens(query_tokens, params.workspace_tokens)
        calls += [
            CallEstimate(model, each, each * refine_in, each * params.max_tokens)
            for model in refiners(params)
        ]
        items = per_round + n if params.keep_drafts else max(per_round, n)
        return LayerEstimate(
            output=Flow(items=items, tokens=max(tokens, params.max_tokens)), calls=tuple(calls)
        )

    async def run(
        self, ctx: LayerContext, params: RefineParams, inputs: Sequence[Payload]
    ) -> Payload:
        drafts = candidates_of(inputs)
        if not drafts:
            ctx.warn("no drafts to refine")
            return Candidates()
        revised: tuple[Candidate, ...] = ()
        budget = RoundBudget()
        for number in range(1, params.rounds + 1):
            current = revised or drafts
            distill = distill_request(ctx, params, current)
            calls, tokens = round_bound(ctx, params, distill)
            refusal = budget.refusal(ctx, calls, tokens)
            if refusal is not None:
                ctx.warn(f"budget: refine stopped before round {number}: {refusal}")
                break
            workspace = await _distill(ctx, distill, number)
            revised = await _refine(ctx, params, workspace, number)
            budget.spent(ctx)
        if not revised:
            return Candidates(items=drafts)
        return Candidates(items=revised + (drafts if params.keep_drafts else ()))


def refiners(params: RefineParams) -> tuple[str, ...]:
    """The models that write the revisions (``models``, else the distiller)."""
    return params.models if params.models is not None else (params.model,)


def clip(text: str, limit: int) -> str:
    """``text`` stripped, or its beginning and end around a ``[...]`` line when it is
    longer than ``limit`` characters (a final answer usually ends a draft)."""
    text = text.strip()
    if len(text) <= limit:
        return text
    half = max(0, limit - len(_CLIPPED)) // 2
    return text[:half] + _CLIPPED + text[len(text) - half :]


def distill_request(
    ctx: LayerContext, params: RefineParams, candidates: Sequence[Candidate]
) -> CompletionRequest:
    """The distill call over the first ``max_drafts`` of ``candidates``, each clipped."""
    shown = [
        c.model_copy(update={"text": clip(c.text, params.draft_chars)})
        for c in candidates[: params.max_drafts]
    ]
    user = render(
        template(params.distill_prompt, DISTILL_PROMPT),
        query=query_text(ctx.query),
        candidates=number_candidates(shown),
        n=len(shown),
        words=params.workspace_tokens * 3 // 4,
    )
    messages = build_messages(user, system=None, default_system=DISTILL_SYSTEM_PROMPT)
    return CompletionRequest(
        model=params.model,
        messages=messages,
        temperature=0.0,
        max_tokens=params.workspace_tokens,
        seed=params.seed,
    )


def refine_messages(ctx: LayerContext, params: RefineParams, workspace: str) -> tuple[Message, ...]:
    """The refiners' messages: the query and the workspace, never the drafts."""
    user = render(
        template(params.prompt, REFINE_PROMPT),
        query=last_user(ctx.query),
        workspace=workspace or EMPTY_WORKSPACE,
    )
    return build_messages(
        user, system=params.system_prompt, default_system=SYSTEM_PROMPT, conversation=ctx.query
    )


def round_bound(
    ctx: LayerContext, params: RefineParams, distill: CompletionRequest
) -> tuple[int, int]:
    """Upper bounds of one round's calls and tokens, counted as the budget meter reserves
    them: the distill call, then every refine call with a workspace of full length."""
    calls = params.revisions * len(refiners(params))
    refine = request(refiners(params)[0], refine_messages(ctx, params, ""), params)
    workspace = math.ceil(params.workspace_tokens * _WORKSPACE_BYTES_PER_TOKEN / 3)
    tokens = request_tokens(distill) + calls * (request_tokens(refine) + workspace)
    return 1 + calls, tokens


async def _distill(ctx: LayerContext, distill: CompletionRequest, number: int) -> str:
    """The workspace of round ``number`` ('' with a warning when the distiller wrote none)."""
    (response,) = await complete_all(ctx, [distill])
    workspace = first_text(response).strip()
    if not workspace:
        ctx.warn(f"the distiller wrote an empty workspace in round {number}")
    return workspace


async def _refine(
    ctx: LayerContext, params: RefineParams, workspace: str, number: int
) -> tuple[Candidate, ...]:
    """The revisions of round ``number``: ``revisions`` samples of each refiner."""
    messages = refine_messages(ctx, params, workspace)
    # A model listed several times writes that many more samples (see ``ensemble``).
    requests = [
        request(model, messages, params, n=n)
        for model, n in ensemble(refiners(params), params.revisions)
    ]
    responses = await complete_all(ctx, requests)
    return tuple(
        sampled(ctx, req.model, index, completion).with_signal("refine_round", number)
        for req, response in zip(requests, responses, strict=True)
        for index, completion in enumerate(response.completions)
    )
