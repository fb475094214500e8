"""``critique``: strengths and weaknesses for each candidate (Archon's critic layer)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

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
from archon.layers.common import JudgeParams
from archon.values import Candidates, Payload


class CritiqueParams(JudgeParams):
    """``mode="each"`` makes one call per candidate; ``"all"`` one call for all of them."""

    mode: Literal["each", "all"] = "each"


class Critique(Layer):
    """Attach a critique (strengths and weaknesses) to each candidate."""

    kind: ClassVar[str] = "critique"
    Params: ClassVar[type[LayerParams]] = CritiqueParams
    consumes = (Candidates,)
    produces = Candidates

    @classmethod
    def estimate(
        cls, params: LayerParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        assert isinstance(params, CritiqueParams)
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
        self, ctx: LayerContext, params: LayerParams, inputs: Sequence[Payload]
    ) -> Payload:
        raise LayerNotImplemented.for_kind(self.kind)
