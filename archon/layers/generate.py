"""``generate``: sample candidates from an ensemble of models (the Archon generator layer)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from archon.layers.base import (
    CallEstimate,
    Flow,
    Layer,
    LayerContext,
    LayerEstimate,
    LayerNotImplemented,
    LayerParams,
    prompt_tokens,
)
from archon.layers.common import EnsembleParams
from archon.values import Candidates, Payload


class GenerateParams(EnsembleParams):
    """``models`` × ``samples`` candidates from the query."""


class Generate(Layer):
    """Sample ``samples`` candidates from each model of ``models`` for the query."""

    kind: ClassVar[str] = "generate"
    Params: ClassVar[type[LayerParams]] = GenerateParams
    consumes = ()
    produces = Candidates

    @classmethod
    def estimate(
        cls, params: LayerParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        assert isinstance(params, GenerateParams)
        calls = tuple(
            CallEstimate(
                model=model,
                calls=params.samples,
                tokens_in=params.samples * prompt_tokens(query_tokens),
                tokens_out=params.samples * params.max_tokens,
            )
            for model in params.models
        )
        return LayerEstimate(
            output=Flow(items=len(params.models) * params.samples, tokens=params.max_tokens),
            calls=calls,
        )

    async def run(
        self, ctx: LayerContext, params: LayerParams, inputs: Sequence[Payload]
    ) -> Payload:
        raise LayerNotImplemented.for_kind(self.kind)
