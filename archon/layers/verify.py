"""``verify``: an LLM verifier that accepts or rejects each candidate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field

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


class VerifyParams(JudgeParams):
    """Keep candidates whose verdict score reaches ``threshold``; never none unless abstaining."""

    threshold: float = Field(0.5, ge=0.0, le=1.0)
    abstain: bool = False


class Verify(Layer):
    """Check each candidate with reasoning; drop the rejected ones (keeps at least one)."""

    kind: ClassVar[str] = "verify"
    Params: ClassVar[type[LayerParams]] = VerifyParams
    consumes = (Candidates,)
    produces = Candidates

    @classmethod
    def estimate(
        cls, params: LayerParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        assert isinstance(params, VerifyParams)
        n, tokens = total_items(inputs), max_tokens_of(inputs)
        return LayerEstimate(
            output=Flow(items=n, tokens=tokens),
            calls=(
                CallEstimate(
                    params.model,
                    n,
                    n * prompt_tokens(query_tokens, tokens),
                    n * params.max_tokens,
                ),
            ),
        )

    async def run(
        self, ctx: LayerContext, params: LayerParams, inputs: Sequence[Payload]
    ) -> Payload:
        raise LayerNotImplemented.for_kind(self.kind)
