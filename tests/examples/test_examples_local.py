"""Examples on a real embedded model (integration, offline).

Each example runs on one query with every `local/...` model served by SmolLM2-135M (fast
enough for CI; its answers are mostly wrong, so only plumbing is asserted) and generation
capped at a few tokens. What must hold: the pipeline runs end to end on llama.cpp, produces a
non-empty answer, and spends no more calls than its static cost estimate.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from archon.compiler import compile_file
from archon.compiler.cost import estimate
from archon.compiler.structure import assign
from archon.ir import Param, Pipeline
from archon.layers import default_registry
from archon.runtime import Limits, run_sync
from archon.runtime.clients.local.models import pull
from archon.runtime.clients.router import RouterClient

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).parents[2] / "examples"
LOCAL_EXAMPLES = ["baseline", "mixture_of_agents", "best_of_n_verify", "math_self_consistency"]
MAX_TOKENS = 24


@pytest.fixture(scope="module")
def smollm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (pip install 'archon-pipe[local]')")
    return pull("smollm2-135m", tmp_path_factory.mktemp("archon_home"), hub_timeout_s=3.0)


def _short(pipeline: Pipeline) -> Pipeline:
    """The same pipeline with every node that generates text capped at MAX_TOKENS."""
    registry = default_registry()
    nodes = []
    for node in pipeline.nodes:
        if "max_tokens" in registry.get(node.kind).Params.model_fields:
            params = tuple(p for p in node.params if p.name != "max_tokens")
            node = node.model_copy(
                update={"params": (*params, Param(name="max_tokens", value=MAX_TOKENS))}
            )
        nodes.append(node)
    return pipeline.model_copy(update={"nodes": tuple(nodes)})


@pytest.mark.parametrize("name", LOCAL_EXAMPLES)
def test_example_runs_on_the_embedded_model(name: str, smollm: Path) -> None:
    registry = default_registry()
    compiled = compile_file(EXAMPLES / f"{name}.pipe", registry)
    pipeline = _short(assign(compiled, None, registry)[0])
    client = RouterClient(local_paths={"*": smollm})
    result = run_sync(
        pipeline,
        "What is 2 + 3? Answer with a number.",
        client=client,
        registry=registry,
        limits=Limits(timeout_s=120.0),
    )
    assert result.answer.strip()
    assert 0 < result.usage.calls <= estimate(pipeline, registry).calls
    assert result.usage.completion_tokens > 0
