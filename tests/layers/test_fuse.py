"""fuse: the contract, plus models x samples new candidates built from all inputs."""

from __future__ import annotations

from archon.layers.fuse import Fuse, FuseParams
from archon.runtime.clients.fake import ScriptedClient
from archon.testing import LayerContract
from archon.values import Candidates


class TestFuseContract(LayerContract):
    layer = Fuse
    params = FuseParams(models=("a", "b"), samples=2, temperature=0.5)
    script = ((None, "fused answer from {model}"),)
    parses_output = False


def test_produces_models_times_samples_fresh_candidates() -> None:
    client = ScriptedClient([(None, "fused by {model}")])
    result = TestFuseContract().run_sync(3, client)
    assert isinstance(result.output, Candidates)
    items = result.output.items
    assert len(items) == 4 and client.calls == 4
    assert [(c.model, c.sample_index) for c in items] == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert all(c.critique is None and c.source_node == "under_test" for c in items)
    prompt = client.requests[0].messages[-1].content
    assert all(f"Candidate {i}" in prompt for i in (1, 2, 3))


def test_prompt_override_is_rendered_without_format() -> None:
    contract = TestFuseContract()
    contract.params = FuseParams(  # type: ignore[misc]
        models=("a",), prompt="Q={query} N={n} keep {literal} {0.__class__}\n{candidates}"
    )
    client = ScriptedClient()
    contract.run_sync(2, client)
    prompt = client.requests[0].messages[-1].content
    assert prompt.startswith(f"Q={contract.query} N=2 keep {{literal}} {{0.__class__}}")
    assert "[2] Candidate 2" in prompt


def test_a_model_listed_twice_writes_distinct_samples() -> None:
    contract = TestFuseContract()
    contract.params = FuseParams(models=("a", "b", "a"), temperature=0.5)  # type: ignore[misc]
    client = ScriptedClient(lambda r: f"{r.model}:{r.seed}")
    result = contract.run_sync(2, client)
    assert isinstance(result.output, Candidates)
    items = result.output.items
    assert [(c.model, c.sample_index) for c in items] == [("a", 0), ("a", 1), ("b", 0)]
    assert len({c.text for c in items}) == 3 and client.calls == 3
