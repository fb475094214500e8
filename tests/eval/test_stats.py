"""The paired bootstrap interval against cases whose answer is known."""

from __future__ import annotations

import math
import random

import pytest

from archon.eval.stats import Difference, paired_bootstrap_ci, paired_difference


def test_identical_vectors_give_zero_everywhere() -> None:
    scores = [1.0, 0.0, 1.0, 1.0, 0.0]
    assert paired_bootstrap_ci(scores, scores) == (0.0, 0.0, 0.0)


def test_a_constant_difference_has_a_zero_width_interval() -> None:
    a = [1.0] * 10
    b = [0.0] * 10
    assert paired_bootstrap_ci(a, b) == (1.0, 1.0, 1.0)


def test_binary_differences_match_the_normal_approximation() -> None:
    # d_i in {0, 1} with mean p: the interval is about p +- 1.96 sqrt(p (1 - p) / n)
    n, p = 400, 0.5
    a = [1.0] * int(n * p) + [0.0] * int(n * (1 - p))
    b = [0.0] * n
    diff, low, high = paired_bootstrap_ci(a, b, resamples=4000, seed=3)
    half = 1.96 * math.sqrt(p * (1 - p) / n)
    assert diff == pytest.approx(0.5)
    assert low == pytest.approx(p - half, abs=0.008)
    assert high == pytest.approx(p + half, abs=0.008)


def test_pairing_removes_shared_item_difficulty() -> None:
    # b is a plus a small constant lift on half the items: item difficulty cancels out
    rng = random.Random(1)
    b = [rng.random() for _ in range(60)]
    a = [x + (0.1 if i % 2 == 0 else 0.0) for i, x in enumerate(b)]
    diff, low, high = paired_bootstrap_ci(a, b)
    assert diff == pytest.approx(0.05)
    assert 0.0 < low < diff < high < 0.1


def test_it_is_pure_and_seeded() -> None:
    rng = random.Random(0)
    a = [rng.random() for _ in range(30)]
    b = [rng.random() for _ in range(30)]
    copy = list(a)
    assert paired_bootstrap_ci(a, b, seed=5) == paired_bootstrap_ci(a, b, seed=5)
    assert paired_bootstrap_ci(a, b, seed=5) != paired_bootstrap_ci(a, b, seed=6)
    assert a == copy  # inputs untouched


def test_bad_inputs_are_value_errors() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        paired_bootstrap_ci([1.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="at least one"):
        paired_bootstrap_ci([], [])


def test_paired_difference_pairs_by_item_id() -> None:
    a = {"x": 1.0, "y": 1.0, "z": 0.0}
    b = {"y": 0.0, "z": 0.0, "w": 1.0}
    diff = paired_difference(a, b)
    assert diff is not None and diff.items == 2 and diff.diff == pytest.approx(0.5)
    assert paired_difference(a, {"q": 1.0}) is None
    assert Difference(0.1, 0.02, 0.2, 9).excludes_zero
    assert not Difference(0.1, -0.02, 0.2, 9).excludes_zero
    assert Difference(0.125, 0.0, 0.25, 40).text() == "+12.5 [+0.0, +25.0]"
