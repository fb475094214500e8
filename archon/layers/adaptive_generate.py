"""``adaptive_generate``: sample in rounds until extracted answers agree, or a cap."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from types import MappingProxyType
from typing import ClassVar

from pydantic import Field

from archon.layers._calls import complete_all, ensemble_estimate, request, sampled
from archon.layers.answers import ExtractMethod, Tally, extract_answer, tally
from archon.layers.base import (
    Flow,
    Layer,
    LayerContext,
    LayerEstimate,
    prompt_tokens,
)
from archon.layers.common import EnsembleParams
from archon.layers.generate import DEFAULT_SYSTEM_PROMPT, PROMPT_TEMPLATE
from archon.layers.prompts import answer_messages
from archon.values import Candidate, Candidates, Completion, CompletionRequest, Message, Payload

logger = logging.getLogger(__name__)


class AdaptiveGenerateParams(EnsembleParams):
    """Rounds of ``batch`` samples until ``agreement`` is reached or ``max_samples``."""

    samples: int = Field(16, ge=1, le=1024)
    batch: int = Field(2, ge=1, le=1024)
    agreement: float = Field(0.6, gt=0.0, le=1.0)
    min_samples: int = Field(3, ge=1, le=1024)
    extract: ExtractMethod = "auto"


class AdaptiveGenerate(Layer[AdaptiveGenerateParams]):
    """Sample until the answers agree (adaptive consistency); ``samples`` is the cap."""

    kind: ClassVar[str] = "adaptive_generate"
    Params = AdaptiveGenerateParams
    consumes = ()
    produces = Candidates
    prompts = MappingProxyType({"system": DEFAULT_SYSTEM_PROMPT, "user": PROMPT_TEMPLATE})

    @classmethod
    def estimate(
        cls, params: AdaptiveGenerateParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        return ensemble_estimate(params, prompt_tokens(query_tokens))

    async def run(
        self, ctx: LayerContext, params: AdaptiveGenerateParams, inputs: Sequence[Payload]
    ) -> Payload:
        messages = answer_messages(
            ctx.query,
            params.prompt,
            system=params.system_prompt,
            default_system=DEFAULT_SYSTEM_PROMPT,
        )
        # Sample k of a model uses seed base + k: distinct across rounds, reproducible, and
        # the same samples (and cache entries) whatever the stopping point.
        base = params.seed if params.seed is not None else ctx.rng.randrange(1 << 30)
        drawn: list[list[Candidate]] = [[] for _ in params.models]
        result: Tally | None = None
        while len(drawn[0]) < params.samples:
            size = min(params.batch, params.samples - len(drawn[0]))
            await _round(ctx, params, messages, base, drawn, size)
            everything = [c for per_model in drawn for c in per_model]
            if len(everything) < params.min_samples:
                continue
            result = tally([extract_answer(c.text, params.extract) for c in everything])
            if result.winner is not None and result.share >= params.agreement:
                break
        items = [c for per_model in drawn for c in per_model]
        if result is None:  # stopped before min_samples: tally what was drawn
            result = tally([extract_answer(c.text, params.extract) for c in items])
        logger.info(
            "%s: %d samples used (cap %d per model)", ctx.node_id, len(items), params.samples
        )
        return Candidates(items=tuple(_scored(items, result)))


async def _round(
    ctx: LayerContext,
    params: AdaptiveGenerateParams,
    messages: tuple[Message, ...],
    base: int,
    drawn: list[list[Candidate]],
    size: int,
) -> None:
    """Draw ``size`` more samples from every model, concurrently, appending to ``drawn``."""
    start = len(drawn[0])
    # The k-th listing of a model draws samples k * cap + i, so a model listed several
    # times gets distinct samples instead of identical copies.
    offsets = [
        params.models[:m].count(model) * params.samples for m, model in enumerate(params.models)
    ]
    jobs: list[tuple[int, int, CompletionRequest]] = [
        (
            m,
            offsets[m] + start + i,
            request(model, messages, params).model_copy(
                update={"seed": base + offsets[m] + start + i}
            ),
        )
        for m, model in enumerate(params.models)
        for i in range(size)
    ]
    responses = await complete_all(ctx, [job[2] for job in jobs])
    for (m, index, req), response in zip(jobs, responses, strict=True):
        completion = response.completions[0] if response.completions else Completion(text="")
        drawn[m].append(sampled(ctx, req.model, index, completion))


def _scored(items: list[Candidate], result: Tally) -> list[Candidate]:
    """Each candidate scored by the share of samples agreeing with its answer."""
    share = [0.0] * len(items)
    total = float(len(items))
    for group, weight in zip(result.groups, result.weights, strict=True):
        for index in group:
            share[index] = weight / total
    return [c.model_copy(update={"score": s}) for c, s in zip(items, share, strict=True)]
