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


class TestGenerateVariantsContract(LayerContract):
    layer = Generate
    params = GenerateParams(
        models=("a",), samples=3, temperature=0.7, variants=("A: {query}", "B: {query}")
    )
    script = ((None, "{model} says 42"),)
    parses_output = False


def test_variants_rotate_across_samples_in_sample_order() -> None:
    contract = TestGenerateVariantsContract()
    client = ScriptedClient(lambda r: f"{r.messages[-1].content[:2]}{r.seed}")
    result = contract.run_sync(0, client)
    assert isinstance(result.output, Candidates)
    items = result.output.items
    assert [c.sample_index for c in items] == [0, 1, 2]
    assert [c.text[:2] for c in items] == ["A:", "B:", "A:"]
    assert items[0].text != items[2].text  # same variant, different samples
    assert client.calls == 3


def test_prompt_and_variants_together_are_rejected_at_compile_time() -> None:
    from archon.compiler import compile_source
    from archon.errors import DiagnosticError

    text = 'pipeline p { generate(models = ["m"], prompt = "x {query}", variants = ["y"]) }'
    try:
        compile_source(text)
    except DiagnosticError as error:
        assert any("prompt or variants" in d.message for d in error.diagnostics)
    else:
        raise AssertionError("expected a diagnostic")
