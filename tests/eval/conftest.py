"""Helpers for evaluation tests: small pipelines, datasets and a filtering test layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import pytest

from archon.compiler import compile_source
from archon.eval import Dataset, EvalItem
from archon.ir import Pipeline
from archon.layers import default_registry
from archon.layers.base import Flow, Layer, LayerContext, LayerEstimate, LayerParams
from archon.layers.registry import Registry
from archon.runtime import Limits
from archon.values import Candidates, Payload


def pipe(body: str, registry: Registry | None = None) -> Pipeline:
    """A pipeline whose model ``m`` is the scripted model ``fake/m``."""
    text = f'models {{ m = "fake/m" }}\npipeline p {{\n{body}\n}}\n'
    return compile_source(text, registry=registry)


def single() -> Pipeline:
    return pipe("generate(models = [m], temperature = 0.0, max_tokens = 64)")


def sampled(samples: int) -> Pipeline:
    return pipe(f"generate(models = [m], samples = {samples}, temperature = 0.7, max_tokens = 64)")


def qa_dataset(n: int, name: str = "qa") -> Dataset:
    """Questions ``q<i>: what is <i> + <i>?`` with target ``2i``."""
    items = tuple(
        EvalItem(id=f"q{i}", turns=(f"q{i}: what is {i} + {i}?",), targets=(str(2 * i),))
        for i in range(n)
    )
    return Dataset(name=name, items=items, metric="exact_match")


class KeepFirstParams(LayerParams):
    keep: int = 1


class KeepFirst(Layer):
    """Test filter layer: keeps the first ``keep`` candidates (no model call)."""

    kind: ClassVar[str] = "keep_first"
    Params: ClassVar[type[LayerParams]] = KeepFirstParams
    consumes = (Candidates,)
    produces = Candidates
    is_filter: ClassVar[bool] = True

    @classmethod
    def estimate(
        cls, params: LayerParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        return LayerEstimate(output=Flow(1, 64))

    async def run(
        self, ctx: LayerContext, params: LayerParams, inputs: Sequence[Payload]
    ) -> Payload:
        assert isinstance(params, KeepFirstParams)
        first = inputs[0]
        assert isinstance(first, Candidates)
        return Candidates(items=first.items[: params.keep])


@pytest.fixture
def registry() -> Registry:
    reg = default_registry().copy()
    reg.register(KeepFirst)
    return reg


@pytest.fixture
def limits() -> Limits:
    return Limits(max_concurrency=32, backoff_s=0.001, max_backoff_s=0.01, timeout_s=10.0)
