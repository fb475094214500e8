"""Helpers for runtime tests: build IR pipelines by hand and a registry with test layers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import pytest

from archon.ir import Budget, Node, Param, Pipeline
from archon.layers import default_registry
from archon.layers.base import Flow, Layer, LayerContext, LayerEstimate, LayerParams
from archon.layers.registry import Registry
from archon.runtime import Limits
from archon.source import Span
from archon.values import Candidate, Candidates, CompletionRequest, Message, Payload


def node(
    node_id: str, kind: str = "generate", inputs: Sequence[str] = (), line: int = 1, **params: Any
) -> Node:
    """A node with a span in ``test.pipe`` at ``line``."""
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    if kind == "generate":
        values.setdefault("models", ("m",))
    return Node(
        id=node_id,
        kind=kind,
        params=tuple(Param(name=k, value=v) for k, v in values.items()),
        inputs=tuple(inputs),
        span=Span(path="test.pipe", line=line, col=3, end_line=line, end_col=10),
    )


def pipeline(*nodes: Node, output: str | None = None, budget: Budget | None = None) -> Pipeline:
    return Pipeline(
        name="t",
        nodes=tuple(nodes),
        output=output or nodes[-1].id,
        budget=budget or Budget(),
    )


class JoinParams(LayerParams):
    model: str = "judge"
    max_tokens: int = 64


class Join(Layer):
    """Test layer: one call over all input candidates; returns its answer as one candidate."""

    kind: ClassVar[str] = "join"
    Params: ClassVar[type[LayerParams]] = JoinParams
    consumes = (Candidates,)
    produces = Candidates

    @classmethod
    def estimate(
        cls, params: LayerParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        return LayerEstimate(output=Flow(1, 64))

    async def run(
        self, ctx: LayerContext, params: LayerParams, inputs: Sequence[Payload]
    ) -> Payload:
        assert isinstance(params, JoinParams)
        texts = [c.text for p in inputs if isinstance(p, Candidates) for c in p.items]
        request = CompletionRequest(
            model=params.model,
            messages=(Message(role="user", content="join: " + " | ".join(texts)),),
            max_tokens=params.max_tokens,
        )
        response = await ctx.complete(request)
        return Candidates(items=(Candidate(text=response.completions[0].text),))


class BoomParams(LayerParams):
    message: str = "boom"


class Boom(Layer):
    """Test layer: raises at once."""

    kind: ClassVar[str] = "boom"
    Params: ClassVar[type[LayerParams]] = BoomParams
    consumes = ()
    produces = Candidates

    @classmethod
    def estimate(
        cls, params: LayerParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        return LayerEstimate(output=Flow(0, 0))

    async def run(
        self, ctx: LayerContext, params: LayerParams, inputs: Sequence[Payload]
    ) -> Payload:
        assert isinstance(params, BoomParams)
        raise ValueError(params.message)


@pytest.fixture
def registry() -> Registry:
    reg = default_registry().copy()
    reg.register(Join)
    reg.register(Boom)
    return reg


@pytest.fixture
def fast_limits() -> Limits:
    return Limits(max_concurrency=64, backoff_s=0.001, max_backoff_s=0.01, timeout_s=5.0)
