"""Step-level search on a real embedded model (integration, offline; plumbing only).

SmolLM2-135M with tiny steps: the searches must run end to end on llama.cpp, stay within
their static estimate, and return candidates carrying a process score, whichever way the
engine handles ``score_only`` (scored, or the generated Yes/No fallback).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from archon.compiler import compile_source
from archon.compiler.cost import estimate
from archon.layers import default_registry
from archon.runtime import Limits, run_sync
from archon.runtime.clients.local.models import pull
from archon.runtime.clients.router import RouterClient
from archon.values import Candidates

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smollm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (pip install 'archon-pipe[local]')")
    return pull("smollm2-135m", tmp_path_factory.mktemp("archon_home"), hub_timeout_s=3.0)


@pytest.mark.parametrize(
    "layer",
    [
        'beam_search(model = t, beam_width = 1, expansions = 2, scorer = "self_eval"',
        'particle_filter(model = t, particles = 2, scorer = "logprob"',
    ],
)
def test_search_runs_on_the_embedded_model(layer: str, smollm: Path) -> None:
    text = (
        'models { t = "local/smollm2-135m" }\n'
        f"pipeline p {{\n  {layer}, max_steps = 2, step_tokens = 12, temperature = 0.7)\n}}\n"
    )
    registry = default_registry()
    pipeline = compile_source(text)
    result = run_sync(
        pipeline,
        "What is 2 + 3?",
        client=RouterClient(local_paths={"*": smollm}),
        registry=registry,
        limits=Limits(timeout_s=120.0),
    )
    assert isinstance(result.output, Candidates) and result.output.items
    assert all(c.signal("process_score") is not None for c in result.output.items)
    assert 0 < result.usage.calls <= estimate(pipeline, registry).calls
