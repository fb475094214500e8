"""``unit_test_generate``: write tests for the query (code asserts or natural checks)."""

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
from archon.layers.common import JudgeParams
from archon.values import Payload, Tests


class UnitTestGenerateParams(JudgeParams):
    """``mode="auto"`` writes code tests for coding queries, natural checks otherwise."""

    num_tests: int = Field(5, ge=1, le=100)
    mode: Literal["auto", "code", "natural"] = "auto"


class UnitTestGenerate(Layer):
    """Generate up to ``num_tests`` tests for the query."""

    kind: ClassVar[str] = "unit_test_generate"
    Params: ClassVar[type[LayerParams]] = UnitTestGenerateParams
    consumes = ()
    produces = Tests

    @classmethod
    def estimate(
        cls, params: LayerParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        assert isinstance(params, UnitTestGenerateParams)
        return LayerEstimate(
            output=Flow(items=params.num_tests, tokens=params.max_tokens),
            calls=(CallEstimate(params.model, 1, prompt_tokens(query_tokens), params.max_tokens),),
        )

    async def run(
        self, ctx: LayerContext, params: LayerParams, inputs: Sequence[Payload]
    ) -> Payload:
        raise LayerNotImplemented.for_kind(self.kind)
