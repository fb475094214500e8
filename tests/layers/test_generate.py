"""generate: the contract, plus ensemble x samples ordering."""

from __future__ import annotations

from archon.layers.generate import Generate, GenerateParams
from archon.runtime.clients.fake import ScriptedClient
from archon.testing import LayerContract
from archon.values import Candidates


class TestGenerateContract(LayerContract):
    layer = Generate
    params = GenerateParams(models=("a", "b"), samples=2, temperature=0.7)
    script = ((None, "{model} says 42"),)
    parses_output = False


def test_candidates_keep_model_and_sample_index() -> None:
    contract = TestGenerateContract()
    result = contract.run_sync(0, ScriptedClient(lambda r: f"{r.model}:{r.seed}"))
    assert isinstance(result.output, Candidates)
    items = result.output.items
    assert [(c.model, c.sample_index) for c in items] == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert len({c.text for c in items}) == 4
