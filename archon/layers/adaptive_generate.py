"""``adaptive_generate``: sample in rounds until extracted answers agree, or a cap."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import Field

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


class AdaptiveGenerateParams(EnsembleParams):
    """Rounds of ``batch`` samples until ``agreement`` is reached or ``max_samples``."""

    samples: int = Field(16, ge=1, le=1024)
    batch: int = Field(2, ge=1, le=1024)
    agreement: float = Field(0.6, gt=0.0, le=1.0)
    min_samples: int = Field(3, ge=1, le=1024)
    extract: Literal["auto", "number", "boxed", "choice", "code", "text"] = "auto"


class AdaptiveGenerate(Layer):
    """Sample until the answers agree (adaptive consistency); ``samples`` is the cap."""

    kind: ClassVar[str] = "adaptive_generate"
    Params: ClassVar[type[LayerParams]] = AdaptiveGenerateParams
    consumes = ()
    produces = Candidates

    @classmethod
    def estimate(
        cls, params: LayerParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        assert isinstance(params, AdaptiveGenerateParams)
        per_model = params.samples
        calls = tuple(
            CallEstimate(
                model,
                per_model,
                per_model * prompt_tokens(query_tokens),
                per_model * params.max_tokens,
            )
            for model in params.models
        )
        return LayerEstimate(
            output=Flow(items=len(params.models) * per_model, tokens=params.max_tokens),
            calls=calls,
        )

    async def run(
        self, ctx: LayerContext, params: LayerParams, inputs: Sequence[Payload]
    ) -> Payload:
        raise LayerNotImplemented.for_kind(self.kind)
