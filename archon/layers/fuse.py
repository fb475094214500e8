"""``fuse``: Mixture-of-Agents aggregation of candidates into new candidates."""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import ClassVar

from archon.layers._calls import (
    candidates_of,
    complete_all,
    ensemble,
    ensemble_estimate,
    request,
    sampled,
)
from archon.layers.base import (
    Flow,
    Layer,
    LayerContext,
    LayerEstimate,
    max_tokens_of,
    prompt_tokens,
    total_items,
)
from archon.layers.common import EnsembleParams
from archon.layers.prompts import build_messages, last_user, number_candidates, render, template
from archon.values import Candidates, Payload

SYSTEM_PROMPT = "You are a helpful assistant. Answer the user's request accurately."
"""System prompt used when neither the query nor ``system_prompt`` gives one."""

PROMPT_TEMPLATE = """You have been provided with a set of responses from various models to the
latest user query. Synthesize these responses into a single, high-quality response. Critically
evaluate the information they provide, recognising that some of it may be biased or incorrect.
Do not simply replicate the given answers; offer a refined, accurate and comprehensive reply.
Where critiques are given, use them to avoid the weaknesses they point out.

Responses from models:
{candidates}

User query:
{query}"""
"""The Mixture-of-Agents aggregate-and-synthesize prompt (``{query}``, ``{candidates}``,
``{n}``). It replaces the user's last turn; earlier turns of a conversation are kept."""


class FuseParams(EnsembleParams):
    """Each of ``models`` writes ``samples`` fused answers from all input candidates."""

    use_critiques: bool = True


class Fuse(Layer[FuseParams]):
    """Synthesise the input candidates (and critiques) into new, better candidates."""

    kind: ClassVar[str] = "fuse"
    Params = FuseParams
    consumes = (Candidates,)
    produces = Candidates
    prompts = MappingProxyType({"system": SYSTEM_PROMPT, "user": PROMPT_TEMPLATE})

    @classmethod
    def estimate(
        cls, params: FuseParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        n, tokens = total_items(inputs), max_tokens_of(inputs)
        return ensemble_estimate(params, prompt_tokens(query_tokens, n * tokens))

    async def run(
        self, ctx: LayerContext, params: FuseParams, inputs: Sequence[Payload]
    ) -> Payload:
        candidates = candidates_of(inputs)
        query = last_user(ctx.query)
        if candidates:
            user = render(
                template(params.prompt, PROMPT_TEMPLATE),
                query=query,
                candidates=number_candidates(candidates, critiques=params.use_critiques),
                n=len(candidates),
            )
        else:
            ctx.warn("no candidates to fuse; the fusers answered the query directly")
            user = query
        messages = build_messages(
            user, system=params.system_prompt, default_system=SYSTEM_PROMPT, conversation=ctx.query
        )
        # A model listed several times writes that many more samples (see ``ensemble``).
        requests = [
            request(m, messages, params, n=n) for m, n in ensemble(params.models, params.samples)
        ]
        responses = await complete_all(ctx, requests)
        return Candidates(
            items=tuple(
                sampled(ctx, req.model, index, completion)
                for req, response in zip(requests, responses, strict=True)
                for index, completion in enumerate(response.completions)
            )
        )
