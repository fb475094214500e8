"""Samples of one node reach an OpenAI-compatible server as ONE request with ``n``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from archon.ir import ModelSpec, Param
from archon.layers.registry import Registry
from archon.runtime import RunResult, run
from archon.runtime.cache import CallCache
from archon.runtime.clients.router import RouterClient
from archon.testing.openai_server import FakeOpenAIServer
from archon.values import Candidates

from .conftest import node, pipeline


async def _run(
    fake: FakeOpenAIServer, registry: Registry, cache: CallCache, samples: int
) -> RunResult:
    spec = ModelSpec(
        alias="srv", model="openai/fake", options=(Param(name="api_base", value=fake.url),)
    )
    p = pipeline(node("gen", models=["srv"], samples=samples, temperature=0.8))
    p = p.model_copy(update={"models": (spec,)})
    client = RouterClient.for_pipeline(p)
    try:
        return await run(p, "q", client=client, registry=registry, cache=cache, seed=3)
    finally:
        await client.aclose()


@pytest.mark.parametrize("supports_n", [True, False, "reject"])
def test_five_samples_are_one_request_or_five(
    registry: Registry, tmp_path: Path, supports_n: bool | str
) -> None:
    async def main() -> tuple[RunResult, RunResult, FakeOpenAIServer]:
        async with FakeOpenAIServer(supports_n=supports_n) as fake:
            cache = CallCache(tmp_path / "cache.sqlite")
            first = await _run(fake, registry, cache, 5)
            again = await _run(fake, registry, cache, 5)
            return first, again, fake

    first, again, fake = asyncio.run(main())
    assert isinstance(first.output, Candidates) and len(first.output.items) == 5
    assert [c.sample_index for c in first.output.items] == [0, 1, 2, 3, 4]
    if supports_n is True:
        assert fake.received == 1 and fake.bodies[0]["n"] == 5
        assert len({c.text for c in first.output.items}) == 5  # five distinct choices
        assert first.usage.prompt_tokens == 10  # the prompt is counted once
    elif supports_n is False:
        # the server answered one choice: the other four went as single requests
        assert fake.received == 5
        assert [b.get("n") for b in fake.bodies] == [5, None, None, None, None]
        assert len({b.get("seed") for b in fake.bodies}) == 5
    else:
        # the server refused n = 5 with HTTP 400: all five went as single requests
        assert fake.received == 6
        assert [b.get("n") for b in fake.bodies] == [5, None, None, None, None, None]
        assert len({b.get("seed") for b in fake.bodies[1:]}) == 5
    assert first.usage.calls == 5
    # five cached samples: the rerun makes no request
    assert again.usage.calls == 0 and again.output == first.output
