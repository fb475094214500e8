"""Holes in define-by-run order, assignment with defaults or params, rewiring, space size."""

from __future__ import annotations

import math

import pytest

from archon.compiler.structure import (
    AssignmentError,
    HoleRef,
    assign,
    default_assignment,
    holes,
    is_concrete,
    space_size,
)
from archon.layers import default_registry

from .helpers import M, compile_ok, ids, inputs

REGISTRY = default_registry()
HEADER = f'models {{ m = "{M}"  n = "local/qwen2.5-coder-0.5b" }}\n'

TEMPLATE = compile_ok(
    HEADER
    + """pipeline p {
      generate(models = choice([m], [m, n]), samples = int(1, 3))
      optional critique(model = m)
      repeat int(0, 2) { fuse(models = [m], temperature = float(0.0, 1.0)) }
      rank(model = m, top_k = int(1, 2))
    }"""
)


def test_holes_in_node_order_switches_before_params() -> None:
    assert [(h.name, h.kind) for h in holes(TEMPLATE)] == [
        ("generate_1.models", "param"),
        ("generate_1.samples", "param"),
        ("critique_1.enabled", "optional"),
        ("repeat_1.count", "repeat"),
        ("fuse_1.1.temperature", "param"),
        ("fuse_1.2.temperature", "param"),
        ("rank_1.top_k", "param"),
    ]


def test_space_size_multiplies_hole_sizes() -> None:
    assert math.isinf(space_size(TEMPLATE))  # continuous temperatures
    discrete = compile_ok(
        HEADER
        + """pipeline p {
          generate(models = choice([m], [m, n], [n]), samples = int(1, 5),
                   top_p = float(0.5, 1.0, step = 0.25))
          optional rank(model = m)
        }"""
    )
    assert space_size(discrete) == 3 * 5 * 3 * 2


def test_assign_with_defaults_drops_switched_off_nodes_and_rewires() -> None:
    concrete, defaulted = assign(TEMPLATE, None, REGISTRY)
    assert defaulted == tuple(h.name for h in holes(TEMPLATE) if not h.name.startswith("fuse"))
    # Defaults: critique on (True first), repeat count 0 -> no fuse copies.
    assert ids(concrete) == ["generate_1", "critique_1", "rank_1"]
    assert inputs(concrete)["rank_1"] == ("critique_1",)
    assert concrete.node("generate_1").arguments() == {"models": (M,), "samples": 1}
    assert is_concrete(concrete) and not is_concrete(TEMPLATE)
    assert concrete.switches == ()
    assert all(n.requires == () for n in concrete.nodes)


def test_assign_with_params_keeps_chosen_copies() -> None:
    params = {
        "critique_1.enabled": False,
        "repeat_1.count": 1,
        "fuse_1.1.temperature": 0.5,
        "generate_1.models": ["m", "x"],
    }
    with pytest.raises(AssignmentError, match="not one of"):
        assign(TEMPLATE, params, REGISTRY)
    params["generate_1.models"] = [M, "local/qwen2.5-coder-0.5b"]
    concrete, defaulted = assign(TEMPLATE, params, REGISTRY)
    assert ids(concrete) == ["generate_1", "fuse_1.1", "rank_1"]
    # critique_1 is off: fuse_1.1 reads what critique read.
    assert inputs(concrete)["fuse_1.1"] == ("generate_1",)
    assert inputs(concrete)["rank_1"] == ("fuse_1.1",)
    assert concrete.node("fuse_1.1").arguments()["temperature"] == 0.5
    assert "fuse_1.2.temperature" not in defaulted  # switched off: never asked for
    assert set(defaulted) == {"generate_1.samples", "rank_1.top_k"}


def test_unknown_parameter_names_get_a_suggestion() -> None:
    with pytest.raises(AssignmentError) as info:
        assign(TEMPLATE, {"rank_1.topk": 2}, REGISTRY)
    assert "'rank_1.topk' (did you mean 'rank_1.top_k'?)" in str(info.value)


def test_values_outside_a_hole_are_rejected() -> None:
    for bad in ({"rank_1.top_k": 3}, {"generate_1.samples": 1.5}, {"critique_1.enabled": 1}):
        with pytest.raises(AssignmentError, match="is not one of"):
            assign(TEMPLATE, bad, REGISTRY)


def test_switching_off_the_output_node_makes_its_input_the_output() -> None:
    p = compile_ok(HEADER + "pipeline p { generate(models = [m]) optional rank(model = m) }")
    concrete, _ = assign(p, {"rank_1.enabled": False}, REGISTRY)
    assert ids(concrete) == ["generate_1"]
    assert concrete.output == "generate_1"


def test_default_assignment_lists_every_hole() -> None:
    defaults = default_assignment(TEMPLATE)
    assert list(defaults) == [h.name for h in holes(TEMPLATE)]
    assert defaults["generate_1.models"] == (M,)
    assert defaults["critique_1.enabled"] is True
    assert defaults["repeat_1.count"] == 0


def test_a_pipeline_without_holes_rejects_any_param() -> None:
    p = compile_ok(HEADER + "pipeline p { generate(models = [m]) }")
    assert holes(p) == () and space_size(p) == 1
    with pytest.raises(AssignmentError, match="has no holes"):
        assign(p, {"generate_1.samples": 2}, REGISTRY)


def test_random_values_always_fit_their_hole() -> None:
    import random

    from archon.compiler.structure import fits, random_chooser, random_value
    from archon.ir import Choice, FloatRange, IntRange

    rng = random.Random(0)
    for hole in (
        Choice(options=("a", 2, True)),
        IntRange(low=1, high=9, step=4),
        FloatRange(low=0.1, high=0.9, step=0.2),
        FloatRange(low=0.0, high=1.0),
    ):
        drawn = [random_value(hole, rng) for _ in range(50)]
        assert all(fits(hole, value) for value in drawn)
        assert len(set(drawn)) > 1
    choose = random_chooser(3)
    again = random_chooser(3)
    ref = HoleRef("n.p", IntRange(low=0, high=100), "param")
    assert [choose(ref) for _ in range(5)] == [again(ref) for _ in range(5)]
