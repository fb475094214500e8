"""Paired decisions on per-item scores: pruning, and which dev items can rank anything.

Every trial is scored item by item, on the same dev items, so two configurations can be
compared *paired*: on the items both have seen, is one significantly below the other? That
is much sharper than comparing two means, and it is what a search must do before it calls a
configuration worse (or better).

* Single-objective studies report one value per item (step = the item's position in the dev
  split) and use Optuna's :class:`~optuna.pruners.WilcoxonPruner`: a trial is pruned when a
  one-sided Wilcoxon signed-rank test on the paired differences to the best trial says it
  is worse (p below the threshold).
* Pareto studies cannot use Optuna's pruners (optuna#3450). :func:`dominated` is the same
  test against every complete trial that costs no more per query: a trial significantly
  below a configuration that is at most as expensive cannot be on the front.
* :func:`screen_items`: once a few configurations have been evaluated on every dev item, an
  item on which all of them scored the same (all passed, or all failed) cannot rank them;
  later trials are evaluated on the other items only, and the dropped items are credited
  with the score every screening configuration got, so objective values stay comparable.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

P_THRESHOLD = 0.1
"""Default one-sided p-value below which a trial is called worse (Optuna's default)."""

MIN_PAIRS = 5
"""Paired items needed before any pruning decision."""


def wilcoxon_less(differences: Sequence[float]) -> float:
    """One-sided p-value that ``differences`` (trial minus incumbent) are centred below 0
    (Wilcoxon signed-rank, ties split between the signs, as Optuna's pruner does)."""
    nonzero = [d for d in differences if d != 0]
    if not nonzero:
        return 1.0
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small samples: scipy warns about the normal approx.
        result = stats.wilcoxon(list(differences), alternative="less", zero_method="zsplit")
    p = float(result.pvalue)
    return 1.0 if math.isnan(p) else p


@dataclass(frozen=True)
class Incumbent:
    """A complete trial as a pareto rival: its per-item scores and cost per query."""

    number: int
    scores: Mapping[str, float]
    cost: float


def dominated(
    scores: Mapping[str, float],
    cost: float,
    rivals: Iterable[Incumbent],
    *,
    p_threshold: float = P_THRESHOLD,
    min_pairs: int = MIN_PAIRS,
) -> str | None:
    """Why a running trial (``scores`` so far, ``cost`` per query so far) cannot reach the
    Pareto front, or None: some rival costs no more and is significantly better on the items
    both have seen."""
    for rival in rivals:
        if rival.cost > cost:
            continue
        common = [key for key in scores if key in rival.scores]
        if len(common) < min_pairs:
            continue
        differences = [scores[key] - rival.scores[key] for key in common]
        if sum(differences) >= 0:
            continue
        p = wilcoxon_less(differences)
        if p < p_threshold:
            return (
                f"below trial {rival.number} (cost {rival.cost:.2f} <= {cost:.2f} per query)"
                f" on {len(common)} paired items, Wilcoxon p = {p:.3f}"
            )
    return None


@dataclass(frozen=True)
class ItemScreen:
    """Which dev items later trials are evaluated on.

    Attributes:
        kept: ids of the items that still separate configurations.
        credit: per dropped item, the score every screening configuration got on it.
        by: the trials the screen was read from.
    """

    kept: tuple[str, ...]
    credit: Mapping[str, float]
    by: tuple[int, ...]

    def describe(self) -> str:
        """One sentence for the report: how the items were chosen."""
        passed = sum(1 for v in self.credit.values() if v >= 1.0)
        failed = sum(1 for v in self.credit.values() if v <= 0.0)
        other = len(self.credit) - passed - failed
        total = len(self.kept) + len(self.credit)
        trials = ", ".join(map(str, self.by))
        parts = [f"{passed} passed by all", f"{failed} failed by all"]
        if other:
            parts.append(f"{other} scored the same by all")
        return (
            f"trials after the screen saw {len(self.kept)} of {total} dev items: of the"
            f" {len(self.credit)} dropped, {', '.join(parts)} of trials {trials}"
            " (each credited with that score)"
        )

    def as_json(self) -> dict[str, Any]:
        """The screen as stored in the study."""
        return {"kept": list(self.kept), "credit": dict(self.credit), "by": list(self.by)}

    @classmethod
    def from_json(cls, data: object) -> ItemScreen | None:
        """A stored screen, or None when ``data`` is not one."""
        if not isinstance(data, dict):
            return None
        kept, credit, by = data.get("kept"), data.get("credit"), data.get("by")
        if not isinstance(kept, list) or not isinstance(credit, dict) or not isinstance(by, list):
            return None
        return cls(
            kept=tuple(str(k) for k in kept),
            credit={str(k): float(v) for k, v in credit.items()},
            by=tuple(int(b) for b in by),
        )

    def objective(self, scores: Mapping[str, float]) -> float:
        """The mean over every dev item: ``scores`` for the kept ones, the credit for the
        dropped ones (comparable with trials evaluated on every item)."""
        total = sum(scores.values()) + sum(self.credit.values())
        count = len(scores) + len(self.credit)
        return total / count if count else 0.0


def screen_items(
    item_ids: Sequence[str], evaluated: Sequence[tuple[int, Mapping[str, float]]]
) -> ItemScreen | None:
    """The screen read from ``evaluated`` (trial number, per-item scores over every item of
    ``item_ids``), or None when it would drop nothing or keep nothing."""
    full = [(n, s) for n, s in evaluated if all(i in s for i in item_ids)]
    if len(full) < 2:
        return None
    kept: list[str] = []
    credit: dict[str, float] = {}
    for item in item_ids:
        values = {scores[item] for _, scores in full}
        if len(values) == 1:
            credit[item] = values.pop()
        else:
            kept.append(item)
    if not credit or not kept:
        return None
    return ItemScreen(tuple(kept), credit, tuple(n for n, _ in full))


@dataclass(frozen=True)
class PairedVerdict:
    """Whether a challenger beats an incumbent on the items both were scored on.

    Attributes:
        better: the challenger is significantly better (one-sided Wilcoxon, p below the
            threshold, on at least ``MIN_PAIRS`` paired items).
        p: the one-sided p-value (1.0 when too few items are paired).
        pairs: the paired items.
        wins / losses: items where the challenger scored higher / lower.
    """

    better: bool
    p: float
    pairs: int
    wins: int
    losses: int

    def describe(self) -> str:
        """The comparison in a few words, for the report."""
        return (
            f"{self.wins} better, {self.losses} worse on {self.pairs} paired items,"
            f" Wilcoxon p = {self.p:.3f}"
        )


def paired_verdict(
    challenger: Mapping[str, float],
    incumbent: Mapping[str, float],
    *,
    p_threshold: float = P_THRESHOLD,
    min_pairs: int = MIN_PAIRS,
) -> PairedVerdict:
    """Is ``challenger`` significantly better than ``incumbent`` on their common items?
    (the test a search winner must pass before it replaces the template's defaults)."""
    common = [key for key in challenger if key in incumbent]
    differences = [incumbent[key] - challenger[key] for key in common]
    wins = sum(1 for d in differences if d < 0)
    losses = sum(1 for d in differences if d > 0)
    if len(common) < min_pairs:
        return PairedVerdict(False, 1.0, len(common), wins, losses)
    p = wilcoxon_less(differences)  # incumbent minus challenger centred below 0
    return PairedVerdict(p < p_threshold and wins > losses, p, len(common), wins, losses)
