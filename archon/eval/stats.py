"""Paired comparisons of two systems on the same items: the difference of their mean scores and
a bootstrap confidence interval for it.

Two architectures evaluated on the same items are compared item by item: the interval comes
from resampling the *items* (with replacement) and recomputing the mean per-item difference,
so the variation that both systems share (hard and easy items) cancels out. With 40 items a
difference of one item is 2.5 points; an interval that includes 0 says the data cannot tell
the two apart.

Everything here is pure and seeded: the same inputs give the same interval on every machine.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def _quantile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted values, by linear interpolation between order statistics."""
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def paired_bootstrap_ci(
    a: Sequence[float],
    b: Sequence[float],
    *,
    resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """``(diff, low, high)``: the mean of ``a[i] - b[i]`` and its percentile bootstrap interval.

    Args:
        a, b: per-item scores of two systems on the same items, in the same order.
        resamples: bootstrap resamples of the items.
        seed: seeds the resampling (pure: equal inputs give equal outputs).
        confidence: the interval's coverage (0.95: the 2.5 and 97.5 percentiles).

    Raises:
        ValueError: the sequences differ in length or are empty, or a setting is out of range.

    Example:
        >>> paired_bootstrap_ci([1.0, 0.0, 1.0], [1.0, 0.0, 1.0])
        (0.0, 0.0, 0.0)
    """
    if len(a) != len(b):
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    if not a:
        raise ValueError("paired scores need at least one item")
    if resamples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError("resamples must be >= 1 and confidence in (0, 1)")
    diffs = [float(x) - float(y) for x, y in zip(a, b, strict=True)]
    n = len(diffs)
    mean = sum(diffs) / n
    if all(d == diffs[0] for d in diffs):
        return mean, mean, mean  # every resample has the same mean
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(diffs, k=n)) / n for _ in range(resamples))
    tail = (1.0 - confidence) / 2.0
    return mean, _quantile(means, tail), _quantile(means, 1.0 - tail)


@dataclass(frozen=True)
class Difference:
    """``a - b`` on the items both were scored on, with its paired bootstrap interval.

    Attributes:
        diff: mean score of ``a`` minus mean score of ``b`` (accuracy points as a fraction).
        low, high: the 95 % confidence interval of ``diff``.
        items: the number of paired items.
    """

    diff: float
    low: float
    high: float
    items: int

    @property
    def excludes_zero(self) -> bool:
        """The interval lies entirely above or below 0: the data tell the two apart."""
        return self.low > 0.0 or self.high < 0.0

    def text(self, scale: float = 100.0) -> str:
        """E.g. ``+12.5 [+0.0, +25.0]`` (in points with the default ``scale``)."""
        return f"{scale * self.diff:+.1f} [{scale * self.low:+.1f}, {scale * self.high:+.1f}]" + (
            " *" if self.excludes_zero else ""
        )


def paired_difference(
    a: Mapping[str, float], b: Mapping[str, float], *, resamples: int = 10_000, seed: int = 0
) -> Difference | None:
    """The :class:`Difference` of per-item scores keyed by item id (None: no common item)."""
    common = sorted(set(a) & set(b))
    if not common:
        return None
    diff, low, high = paired_bootstrap_ci(
        [a[i] for i in common], [b[i] for i in common], resamples=resamples, seed=seed
    )
    return Difference(diff, low, high, len(common))
