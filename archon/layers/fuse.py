"""``fuse``: Mixture-of-Agents aggregation of candidates into new candidates."""

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
    max_tokens_of,
    prompt_tokens,
    total_items,
)
from archon.layers.common import EnsembleParams
from archon.values import Candidates, Payload


class FuseParams(EnsembleParams):
    """Each of ``models`` writes ``samples`` fused answers from all input candidates."""

    use_critiques: bool = True


class Fuse(Layer):
    """Synthesise the input candidates (and critiques) into new, better candidates."""

    kind: ClassVar[str] = "fuse"
    Params: ClassVar[type[LayerParams]] = FuseParams
    consumes = (Candidates,)
    produces = Candidates

    @classmethod
    def estimate(
        cls, params: LayerParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        assert isinstance(params, FuseParams)
        n, tokens = total_items(inputs), max_tokens_of(inputs)
        per_call_in = prompt_tokens(query_tokens, n * tokens)
        calls = tuple(
            CallEstimate(
                model,
                params.samples,
                params.samples * per_call_in,
                params.samples * params.max_tokens,
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
