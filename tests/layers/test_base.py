"""The ``Layer`` contract: generic in its params, and plain ``class X(Layer)`` still valid."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import ClassVar

import pytest
from pydantic import ValidationError

from archon.ir import Node, Param, Pipeline
from archon.layers import Registry, load_builtin_layers
from archon.layers.base import Flow, Layer, LayerContext, LayerEstimate, LayerParams
from archon.layers.generate import Generate, GenerateParams
from archon.layers.vote import VoteParams
from archon.runtime import run
from archon.runtime.clients.fake import ScriptedClient
from archon.values import Candidate, Candidates, Payload


class EchoParams(LayerParams):
    """What to say."""

    text: str = "echo"


class Echo(Layer):
    """A kind written without a type argument: ``run`` receives plain ``LayerParams``."""

    kind: ClassVar[str] = "echo"
    Params: ClassVar[type[LayerParams]] = EchoParams
    produces = Candidates

    @classmethod
    def estimate(
        cls, params: LayerParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        return LayerEstimate(output=Flow(1, 1))

    async def run(
        self, ctx: LayerContext, params: LayerParams, inputs: Sequence[Payload]
    ) -> Payload:
        assert isinstance(params, EchoParams)
        return Candidates(items=(Candidate(text=params.text),))


def test_validate_params_gives_the_kinds_own_type() -> None:
    params = Generate.validate_params({"models": ["m"], "samples": 2})
    assert type(params) is GenerateParams and params.samples == 2
    assert Generate.validate_params(params) is params


def test_validate_params_rejects_another_kinds_params() -> None:
    with pytest.raises(ValidationError):
        Generate.validate_params(VoteParams())
    with pytest.raises(ValidationError):
        Generate.validate_params({"models": []})


def test_a_plain_layer_subclass_registers_and_runs() -> None:
    registry = Registry([*load_builtin_layers(), Echo])
    assert Echo.validate_params({"text": "hi"}) == EchoParams(text="hi")
    node = Node(id="say", kind="echo", params=(Param(name="text", value="hello"),))
    pipeline = Pipeline(name="plain", nodes=(node,), output="say")
    result = asyncio.run(run(pipeline, "q", client=ScriptedClient([]), registry=registry))
    assert result.output == Candidates(items=(Candidate(text="hello"),))
