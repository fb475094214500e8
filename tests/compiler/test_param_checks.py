"""Parameter validation through each kind's ``Params``: every option of every hole."""

from __future__ import annotations

import pytest

from archon.compiler.param_checks import check_params
from archon.ir import Choice, FloatRange, IntRange
from archon.layers import default_registry

from .helpers import M, check, node, pipeline

REGISTRY = default_registry()


def problems(*nodes_: object) -> list[tuple[str, str]]:
    return [(d.code, d.message) for d in check_params(pipeline(*nodes_), REGISTRY)]  # type: ignore[arg-type]


def test_valid_holes_pass() -> None:
    assert (
        problems(
            node("g", samples=IntRange(low=1, high=8), temperature=FloatRange(low=0.0, high=2.0)),
            node("r", "rank", ("g",), mode=Choice(options=("listwise", "pairwise", "score"))),
        )
        == []
    )


def test_every_choice_option_is_validated() -> None:
    found = problems(node("r", "rank", top_k=Choice(options=(1, 0, 3, 2000))))
    assert found == [
        ("E302", "rank(): option 0 of 'top_k' is invalid: it must be at least 1"),
        ("E302", "rank(): option 2000 of 'top_k' is invalid: it must be at most 1024"),
    ]


@pytest.mark.parametrize(
    ("hole", "bad"),
    [
        (IntRange(low=0, high=3), "0"),
        (IntRange(low=1, high=2000), "2000"),
        (IntRange(low=1, high=5, default_value=0), "0"),  # a default outside the bounds
    ],
)
def test_both_ends_and_the_default_of_an_int_range_are_validated(hole: IntRange, bad: str) -> None:
    (found,) = problems(node("r", "rank", top_k=hole))
    assert found[0] == "E302"
    assert f"option {bad} of 'top_k'" in found[1]


@pytest.mark.parametrize(("low", "high", "bad"), [(-0.5, 1.0, "-0.5"), (0.0, 2.5, "2.5")])
def test_both_ends_of_a_float_range_are_validated(low: float, high: float, bad: str) -> None:
    (found,) = problems(node("g", temperature=FloatRange(low=low, high=high)))
    assert found[0] == "E302"
    assert f"option {bad} of 'temperature'" in found[1]


def test_a_choice_of_lists_is_validated_per_option() -> None:
    found = problems(node("g", models=Choice(options=((M,), ()))))
    assert found == [
        ("E302", "generate(): option [] of 'models' is invalid: it needs at least 1 item(s)")
    ]


def test_bools_are_not_integers() -> None:
    (found,) = problems(node("g", samples=Choice(options=(2, True))))
    assert found == (
        "E302",
        "generate(): option true of 'samples' is invalid: it must be a whole number",
    )


def test_a_bad_default_is_reported_once_not_by_every_trial() -> None:
    # Both holes have an invalid default; each trial of one hole uses the other's default.
    found = problems(
        node(
            "r",
            "rank",
            top_k=IntRange(low=0, high=3),
            mode=Choice(options=("best", "listwise")),
        )
    )
    assert found == [
        ("E302", "rank(): option 0 of 'top_k' is invalid: it must be at least 1"),
        (
            "E302",
            "rank(): option \"best\" of 'mode' is invalid:"
            ' it must be one of "listwise", "pairwise", "score"',
        ),
    ]


def test_unknown_and_missing_parameters() -> None:
    (unknown,) = check_params(pipeline(node("r", "rank", topk=3)), REGISTRY)
    assert (unknown.code, unknown.message, unknown.hint) == (
        "E220",
        "rank() has no parameter 'topk'",
        "did you mean 'top_k'?",
    )
    bare = node("v", "verify").model_copy(update={"params": ()})
    (missing,) = check_params(pipeline(bare), REGISTRY)
    assert (missing.code, missing.message) == ("E221", "verify() needs parameter 'model'")


def test_unknown_kind_in_hand_built_ir() -> None:
    (error,) = check_params(pipeline(node("x", "genrate", models=(M,))), REGISTRY)
    assert (error.code, error.hint) == ("E203", "did you mean 'generate'?")


def test_a_literal_mistake_gets_a_suggestion() -> None:
    result = check(
        f'pipeline p {{ generate(models = ["{M}"]) rank(model = "{M}", mode = "pairwize") }}'
    )
    (error,) = result.errors
    assert error.code == "E302"
    assert error.hint == "did you mean 'pairwise'?"
    assert error.message.endswith('not "pairwize"')


def test_the_caret_sits_under_the_bad_value_and_the_bad_option() -> None:
    text = f'pipeline p {{\n  generate(models = ["{M}"], samples = choice(2, 0))\n}}'
    (error,) = check(text).errors
    assert error.span is not None
    line = text.splitlines()[error.span.line - 1]
    assert line[error.span.col - 1 : error.span.end_col - 1] == "choice(2, 0)"
    assert error.notes and "every option" in error.notes[0]
