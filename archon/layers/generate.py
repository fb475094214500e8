"""``generate``: sample candidates from an ensemble of models (the Archon generator layer)."""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import ClassVar

from pydantic import model_validator

from archon.layers._calls import complete_all, ensemble, ensemble_estimate, request, sampled
from archon.layers.base import (
    Flow,
    Layer,
    LayerContext,
    LayerEstimate,
    prompt_tokens,
)
from archon.layers.common import EnsembleParams
from archon.layers.prompts import QUERY_TEMPLATE, answer_messages
from archon.values import Candidate, Candidates, Message, Payload

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant. Answer the user's request accurately."
"""System prompt used when neither the query nor ``system_prompt`` gives one."""

PROMPT_TEMPLATE = QUERY_TEMPLATE
"""The user prompt: the query itself; a ``prompt`` override may wrap it, e.g.
``"Think step by step. {query}"``."""


class GenerateParams(EnsembleParams):
    """``models`` × ``samples`` candidates from the query.

    ``variants`` are alternative user-prompt templates (each with ``{query}``) used in turn
    across the samples of every model, for diversity: sample *i* uses variant
    ``i % len(variants)``. They replace ``prompt``, so give one or the other.
    """

    variants: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _one_prompt_source(self) -> GenerateParams:
        if self.variants and self.prompt is not None:
            raise ValueError("give either prompt or variants, not both")
        return self


class Generate(Layer[GenerateParams]):
    """Sample ``samples`` candidates from each model of ``models`` for the query."""

    kind: ClassVar[str] = "generate"
    Params = GenerateParams
    consumes = ()
    produces = Candidates
    prompts = MappingProxyType({"system": DEFAULT_SYSTEM_PROMPT, "user": PROMPT_TEMPLATE})

    @classmethod
    def estimate(
        cls, params: GenerateParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        return ensemble_estimate(params, prompt_tokens(query_tokens))

    async def run(
        self, ctx: LayerContext, params: GenerateParams, inputs: Sequence[Payload]
    ) -> Payload:
        templates = params.variants or (params.prompt,)
        # One request per (model, template): sample i of a model uses template i % len, so a
        # template serves samples v, v + len, v + 2 len, ... (n of them, cached per index).
        # A model listed several times is one model with more samples (see ``ensemble``).
        plan = [
            (model, variant, range(variant, samples, len(templates)))
            for model, samples in ensemble(params.models, params.samples)
            for variant in range(len(templates))
            if variant < samples
        ]
        requests = [
            request(model, _messages(ctx.query, params, templates[variant]), params, n=len(indices))
            for model, variant, indices in plan
        ]
        # The ensemble members are asked concurrently (one gather; no task of our own).
        responses = await complete_all(ctx, requests)
        by_model: dict[str, list[Candidate]] = {model: [] for model in params.models}
        for (model, _, indices), response in zip(plan, responses, strict=True):
            for index, completion in zip(indices, response.completions, strict=False):
                by_model[model].append(sampled(ctx, model, index, completion))
        items = tuple(
            candidate
            for model, candidates in by_model.items()
            for candidate in sorted(candidates, key=lambda c: c.sample_index)
        )
        return Candidates(items=items)


def _messages(
    query: tuple[Message, ...], params: GenerateParams, prompt: str | None
) -> tuple[Message, ...]:
    """The query, with the system prompt and the user-prompt template applied."""
    return answer_messages(
        query, prompt, system=params.system_prompt, default_system=DEFAULT_SYSTEM_PROMPT
    )
