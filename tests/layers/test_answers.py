"""Defensive parsers: rankings, scores, verdicts, answer extraction and equivalence."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archon.layers.answers import (
    answers_equivalent,
    extract_answer,
    extract_code,
    parse_preference,
    parse_ranking,
    parse_score,
    parse_verdict,
    tally,
)


@pytest.mark.parametrize(
    ("text", "order", "complete"),
    [
        ("[2] > [1] > [3]", (1, 0, 2), True),
        ("2, 1, 3", (1, 0, 2), True),
        ("Thinking about [1]...\nRanking: [3] > [1]", (2, 0, 1), False),
        ("[9] > [2] > [2] > [1] > [3]", (1, 0, 2), True),
    ],
)
def test_parse_ranking(text: str, order: tuple[int, ...], complete: bool) -> None:
    ranking = parse_ranking(text, 3)
    assert ranking is not None
    assert ranking.order == order and ranking.complete is complete


@given(st.text(), st.integers(min_value=0, max_value=12))
def test_parse_ranking_is_a_permutation_or_none(text: str, n: int) -> None:
    ranking = parse_ranking(text, n)
    assert ranking is None or sorted(ranking.order) == list(range(n))


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("Score: 7", 0.7),
        ("8/10", 0.8),
        ("I'd say 3 out of 10", 0.3),
        ("0.25", 0.25),
        ("Rating: 10", 1.0),
        ("Score: 42", None),
        ("no number", None),
    ],
)
def test_parse_score(text: str, score: float | None) -> None:
    assert parse_score(text) == score


@given(st.text())
def test_parsers_never_raise(text: str) -> None:
    score = parse_score(text)
    assert score is None or 0.0 <= score <= 1.0
    parse_verdict(text)
    parse_preference(text)
    for method in ("auto", "number", "boxed", "choice", "code", "text"):
        extract_answer(text, method)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Verdict: Yes", True),
        ("reasoning... it is wrong.\nVerdict: No", False),
        ("Yes.", True),
        ("Incorrect, because", False),
        ("maybe", None),
    ],
)
def test_parse_verdict(text: str, verdict: bool | None) -> None:
    assert parse_verdict(text) is verdict


def test_parse_preference() -> None:
    assert parse_preference("Better: B") == "B"
    assert parse_preference("A") == "A"
    assert parse_preference("both are fine") is None


@pytest.mark.parametrize(
    ("text", "method", "answer"),
    [
        (r"thus \boxed{\frac{1}{2}}.", "auto", r"\frac{1}{2}"),
        ("first 3, then 4, so the answer is 12.", "number", "12"),
        ("Answer: 1,234", "number", "1,234"),
        ("I pick (C) because", "choice", "C"),
        ("Answer: D", "choice", "D"),
        ("The capital is Paris.", "text", "the capital is paris"),
        ("no digits", "number", None),
    ],
)
def test_extract_answer(text: str, method: str, answer: str | None) -> None:
    assert extract_answer(text, method) == answer  # type: ignore[arg-type]


def test_extract_code_prefers_the_largest_python_block() -> None:
    text = "```\nplain\n```\n```python\ndef f():\n    return 1\n```\n```python\nf()\n```"
    assert extract_code(text) == "def f():\n    return 1"
    assert extract_code("  x = 1  ") == "x = 1"


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (r"\frac{1}{2}", "0.5", True),
        ("1,000", "1000", True),
        ("Paris", "paris.", True),
        ("x^2+2x+1", "(x+1)^2", True),
        ("3", "4", False),
        ("cat", "dog", False),
    ],
)
def test_answers_equivalent(a: str, b: str, same: bool) -> None:
    assert answers_equivalent(a, b) is same


def test_tally_breaks_ties_by_first_appearance() -> None:
    result = tally(["b", "a", "a", "b", None])
    assert result.groups == ((0, 3), (1, 2))
    assert result.winner == 0 and result.share == pytest.approx(0.4)
