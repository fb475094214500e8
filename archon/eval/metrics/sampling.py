"""Estimators over many candidates per item: unbiased pass@k, coverage, verifier precision.

``pass_at_k`` is the estimator of Chen et al. (2021), "Evaluating Large Language Models Trained
on Code": with ``n`` samples of which ``c`` are correct,
``pass@k = 1 - C(n - c, k) / C(n, k)``, computed as a stable product.

Example:
    >>> pass_at_k(5, 1, 1)
    0.2
    >>> pass_at_k(5, 0, 5), pass_at_k(5, 1, 5)
    (0.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Iterable


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of ``k`` samples drawn without replacement from ``n``
    (``c`` of them correct) is correct."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n (got n={n}, c={c})")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n (got n={n}, k={k})")
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> tuple[float | None, int]:
    """Mean pass@k over items given as ``(n, c)``; items with fewer than ``k`` samples are
    skipped. Returns ``(mean or None, items used)``."""
    values = [pass_at_k(n, c, k) for n, c in counts if n >= k]
    return (sum(values) / len(values) if values else None), len(values)
