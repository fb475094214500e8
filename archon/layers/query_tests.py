"""``query_tests``: the tests a coding query states itself (doctests, asserts, I/O examples).

No model call: the examples are read from the query's text (see
:mod:`archon.layers._query_examples`) and become ``origin="query"`` tests that
``unit_test_evaluate`` and ``exec_vote`` run in the sandbox. Tests a model writes may be
wrong; the ones the task states are the closest thing to ground truth a pipeline has.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field

from archon.layers._query_examples import extract
from archon.layers.base import Flow, Layer, LayerContext, LayerEstimate, LayerParams
from archon.layers.prompts import query_text
from archon.values import Payload, Tests


class QueryTestsParams(LayerParams):
    """At most ``max_tests`` tests, in the order the query states them."""

    max_tests: int = Field(50, ge=1, le=1000)


class QueryTests(Layer[QueryTestsParams]):
    """Extract executable checks from the query: doctest examples, asserts, Input/Output.

    Function tasks give ``assert f(x) == <literal>`` code tests; stdin/stdout programs give
    ``io`` tests. Examples whose expected value is not a Python literal are skipped.
    """

    kind: ClassVar[str] = "query_tests"
    Params = QueryTestsParams
    consumes = ()
    produces = Tests

    @classmethod
    def estimate(
        cls, params: QueryTestsParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        return LayerEstimate(output=Flow(items=params.max_tests, tokens=query_tokens))

    async def run(
        self, ctx: LayerContext, params: QueryTestsParams, inputs: Sequence[Payload]
    ) -> Payload:
        found = extract(query_text(ctx.query)).tests
        if not found:
            ctx.warn(
                "the query states no executable example (doctest, assert or Input/Output"
                " block); produced no tests"
            )
        return Tests(items=found[: params.max_tests])
