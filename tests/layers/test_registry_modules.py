"""Every built-in kind module registers exactly one kind, with ports and prompts declared."""

from __future__ import annotations

from archon.layers import builtin_layer_modules, layers_in_module, load_builtin_layers

EXPECTED = {
    "execute",
    "exit_if",
    "distinguish",
    "refine",
    "repair",
    "adaptive_generate",
    "combine",
    "consensus",
    "beam_search",
    "critique",
    "exec_vote",
    "fuse",
    "generate",
    "likelihood",
    "query_tests",
    "particle_filter",
    "rank",
    "unit_test_evaluate",
    "unit_test_generate",
    "verify",
    "vote",
}

NO_MODEL = {"vote", "query_tests", "combine", "consensus", "execute", "exit_if"}
"""Kinds that never call a model, so they have no prompts to show."""


def test_each_module_defines_exactly_one_kind() -> None:
    for module in builtin_layer_modules():
        layers = layers_in_module(module)
        assert len(layers) == 1, f"{module.__name__} defines {layers}"
        assert layers[0].kind == module.__name__.rsplit(".", 1)[1]


def test_the_builtin_kinds() -> None:
    registry = load_builtin_layers()
    assert set(registry.kinds()) == EXPECTED
    for layer in registry:
        assert layer.__doc__ and layer.Params.__doc__
        assert layer.kind in NO_MODEL or layer.prompts, f"{layer.kind} shows no prompts"
