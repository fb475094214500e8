"""``vote``: majority vote / self-consistency over answers extracted from candidates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from archon.layers.base import (
    Flow,
    Layer,
    LayerContext,
    LayerEstimate,
    LayerNotImplemented,
    LayerParams,
    max_tokens_of,
    total_items,
)
from archon.values import Candidates, Payload


class VoteParams(LayerParams):
    """How answers are extracted and compared; ties break by first appearance."""

    extract: Literal["auto", "number", "boxed", "choice", "code", "text"] = "auto"
    weighted: bool = False


class Vote(Layer):
    """Keep the candidate whose extracted answer the most candidates agree on."""

    kind: ClassVar[str] = "vote"
    Params: ClassVar[type[LayerParams]] = VoteParams
    consumes = (Candidates,)
    produces = Candidates

    @classmethod
    def estimate(
        cls, params: LayerParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        n, tokens = total_items(inputs), max_tokens_of(inputs)
        return LayerEstimate(output=Flow(items=min(n, 1), tokens=tokens))

    async def run(
        self, ctx: LayerContext, params: LayerParams, inputs: Sequence[Payload]
    ) -> Payload:
        raise LayerNotImplemented.for_kind(self.kind)
