"""``unit_test_evaluate``: run candidates against tests and rank them by tests passed."""

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
from archon.layers.common import SamplingParams
from archon.values import Candidates, Payload, Tests


class UnitTestEvaluateParams(SamplingParams):
    """Code tests run in a sandbox; natural-language checks are judged by ``model``."""

    model: str | None = None
    top_k: int | None = Field(None, ge=1, le=1024)
    timeout_s: float = Field(5.0, gt=0.0, le=600.0)
    memory_mb: int = Field(512, ge=16, le=65536)


class UnitTestEvaluate(Layer):
    """Rank candidates by the number of tests they pass (code in a sandboxed subprocess)."""

    kind: ClassVar[str] = "unit_test_evaluate"
    Params: ClassVar[type[LayerParams]] = UnitTestEvaluateParams
    consumes = (Candidates, Tests)
    produces = Candidates

    @classmethod
    def estimate(
        cls, params: LayerParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        assert isinstance(params, UnitTestEvaluateParams)
        candidates = total_items(inputs[:1]) if inputs else 0
        tests = total_items(inputs[1:])
        tokens = max_tokens_of(inputs[:1])
        keep = candidates if params.top_k is None else min(candidates, params.top_k)
        calls: tuple[CallEstimate, ...] = ()
        if params.model is not None:
            # Upper bound: every test may be a natural-language check judged per candidate.
            n = candidates * tests
            per_call_in = prompt_tokens(query_tokens, tokens, max_tokens_of(inputs[1:]))
            calls = (CallEstimate(params.model, n, n * per_call_in, n * params.max_tokens),)
        return LayerEstimate(output=Flow(items=keep, tokens=tokens), calls=calls)

    async def run(
        self, ctx: LayerContext, params: LayerParams, inputs: Sequence[Payload]
    ) -> Payload:
        raise LayerNotImplemented.for_kind(self.kind)
