"""``rank``: order candidates with a judge model and keep the best ``top_k``."""

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
    max_tokens_of,
    prompt_tokens,
    total_items,
)
from archon.layers.common import JudgeParams
from archon.values import Candidates, Payload


class RankParams(JudgeParams):
    """Listwise (one prompt, a permutation), pairwise (round robin, both orders) or score."""

    top_k: int = Field(3, ge=1, le=1024)
    mode: Literal["listwise", "pairwise", "score"] = "listwise"
    use_critiques: bool = True


class Rank(Layer):
    """Order candidates with a judge model; keep the best ``top_k``."""

    kind: ClassVar[str] = "rank"
    Params: ClassVar[type[LayerParams]] = RankParams
    consumes = (Candidates,)
    produces = Candidates

    @classmethod
    def estimate(
        cls, params: LayerParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        assert isinstance(params, RankParams)
        n, tokens = total_items(inputs), max_tokens_of(inputs)
        if n <= 1:
            calls, per_call_in = 0, 0
        elif params.mode == "listwise":
            calls, per_call_in = 1, prompt_tokens(query_tokens, n * tokens)
        elif params.mode == "pairwise":
            calls, per_call_in = n * (n - 1), prompt_tokens(query_tokens, 2 * tokens)
        else:
            calls, per_call_in = n, prompt_tokens(query_tokens, tokens)
        return LayerEstimate(
            output=Flow(items=min(n, params.top_k), tokens=tokens),
            calls=(
                CallEstimate(params.model, calls, calls * per_call_in, calls * params.max_tokens),
            ),
        )

    async def run(
        self, ctx: LayerContext, params: LayerParams, inputs: Sequence[Payload]
    ) -> Payload:
        raise LayerNotImplemented.for_kind(self.kind)
