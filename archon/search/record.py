"""The codec of what a search stores in its study: one place for attribute keys and types.

Optuna keeps a trial's results as JSON user attributes, and the study's description and
held-out results as study user attributes (the results keyed ``<prefix><trial number>``).
Everything that writes or reads them goes through this module:

* :class:`TrialKey` lists every trial attribute key; :class:`TrialRecord` reads a trial's
  attributes into typed fields (tolerating studies written by earlier versions: a missing or
  mistyped value reads as absent);
* :class:`StudyKey` lists every study attribute key (the template, its fingerprint and
  history, the objective, the winner rule, the item screen);
* :data:`TEST_PREFIX`, :data:`FULL_DEV_PREFIX` and :data:`REFERENCE_PREFIX` are the study
  attribute prefixes of stored results; :func:`numbered_key` writes a per-trial key and
  :func:`numbered` reads them back by trial number. :class:`ResultKey` lists the keys of one
  stored result and :class:`StoredResult` reads it;
* :class:`WinnerRecord` is the winner rule a search records for its reports;
* :class:`StopReason` is why a search stopped (a budget limit, the space exhausted, an
  interruption, or done): typed, with the ``str()`` the CLI has always printed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from archon.runtime import BudgetExceeded

TEST_PREFIX = "test."
"""Study attribute prefix of a trial's result on the test split."""
FULL_DEV_PREFIX = "dev_full."
"""Study attribute prefix of a trial's re-evaluation on the whole dev split (promotion)."""
REFERENCE_PREFIX = "reference."
"""Study attribute prefix of a baseline's result on the test split (single sample, vote)."""


class StudyKey(StrEnum):
    """Every study user attribute a search writes (besides the prefixed results)."""

    TEMPLATE_FINGERPRINT = "template_fingerprint"
    TEMPLATE = "template"
    """The template as JSON (spans stripped): reports rebuild everything from storage."""
    SEARCH_SPACE = "search_space"
    """The template's hole names."""
    TEMPLATE_HISTORY = "template_history"
    """``[{"fingerprint": ..., "at": unix time}, ...]``: the templates the study has seen."""
    OBJECTIVE = "objective"
    COST_UNIT = "cost_unit"
    ARCHON_VERSION = "archon_version"
    WINNER_RULE = "winner_rule"
    """How the winner is chosen (a :class:`WinnerRecord`), written by the latest search run so
    that a report reads the rule the search applied."""
    ITEM_SCREEN = "item_screen"
    """The :class:`~archon.search.paired.ItemScreen` in force."""


class TrialKey(StrEnum):
    """Every trial user attribute a search writes."""

    BASELINE = "baseline"
    WORKER = "worker"
    HEARTBEAT = "heartbeat"
    ERROR = "error"
    FINGERPRINT = "fingerprint"
    PIPELINE = "pipeline"
    EST_CALLS = "est_calls"
    EST_TOKENS = "est_tokens"
    INFEASIBLE = "infeasible"
    DUPLICATE_OF = "duplicate_of"
    SCREENED_ITEMS = "screened_items"
    SCREENED_SCORE = "screened_score"
    SCORES = "scores"
    """``[[item id, score], ...]`` of every trial item (with item screening, the dropped
    items at their credit; ``screened_items`` says how many were evaluated)."""
    SCORE = "score"
    ITEMS = "items"
    COST_PER_QUERY = "cost_per_query"
    PER_QUERY = "per_query"
    BY_MODEL = "by_model"
    CALLS = "calls"
    CACHE_HITS = "cache_hits"
    BANK_HITS = "bank_hits"
    TOKENS = "tokens"
    USD = "usd"
    USD_EQUIVALENT = "usd_equivalent"
    FAILED_ITEMS = "failed_items"
    WALL_S = "wall_s"
    CPU_S = "cpu_s"
    CONSTRAINT = "constraint"
    """Measured mean calls per query minus ``max_mean_calls`` (<= 0 is feasible)."""
    PRUNED_BY = "pruned_by"
    STOPPED = "stopped"
    RETRY_OF = "retry_of"
    RETRY_REASON = "retry_reason"


COPIED = (
    TrialKey.ITEMS,
    TrialKey.SCORE,
    TrialKey.COST_PER_QUERY,
    TrialKey.PER_QUERY,
    TrialKey.SCREENED_SCORE,
    TrialKey.CONSTRAINT,
)
"""Result attributes a duplicate trial copies from the trial it duplicates."""


def as_float(value: Any) -> float | None:
    """A stored number as a float (None when absent or not a number)."""
    return float(value) if isinstance(value, int | float) else None


def as_int(value: Any) -> int | None:
    """A stored integer (None when absent or not an integer)."""
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def as_dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def as_scores(value: Any) -> dict[str, float]:
    """Per-item scores stored as ``[[id, score], ...]`` (malformed pairs are skipped)."""
    if not isinstance(value, list):
        return {}
    scores: dict[str, float] = {}
    for pair in value:
        if isinstance(pair, list | tuple) and len(pair) == 2:
            score = as_float(pair[1])
            if score is not None:
                scores[str(pair[0])] = score
    return scores


@dataclass(frozen=True)
class TrialRecord:
    """A trial's user attributes, typed (absent or mistyped values read as None/empty)."""

    score: float | None = None
    items: int = 0
    cost_per_query: float | None = None
    est_calls: int | None = None
    calls: int = 0
    cache_hits: int = 0
    usd: float = 0.0
    infeasible: str | None = None
    duplicate_of: int | None = None
    baseline: bool = False
    by_model: dict[str, Any] = field(default_factory=dict)
    per_query: dict[str, Any] = field(default_factory=dict)
    pipeline: str | None = None
    fingerprint: str | None = None
    scores: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> TrialRecord:
        return cls(
            score=as_float(attrs.get(TrialKey.SCORE)),
            items=as_int(attrs.get(TrialKey.ITEMS)) or 0,
            cost_per_query=as_float(attrs.get(TrialKey.COST_PER_QUERY)),
            est_calls=as_int(attrs.get(TrialKey.EST_CALLS)),
            calls=as_int(attrs.get(TrialKey.CALLS)) or 0,
            cache_hits=as_int(attrs.get(TrialKey.CACHE_HITS)) or 0,
            usd=as_float(attrs.get(TrialKey.USD)) or 0.0,
            infeasible=as_str(attrs.get(TrialKey.INFEASIBLE)),
            duplicate_of=as_int(attrs.get(TrialKey.DUPLICATE_OF)),
            baseline=bool(attrs.get(TrialKey.BASELINE, False)),
            by_model=as_dict(attrs.get(TrialKey.BY_MODEL)),
            per_query=as_dict(attrs.get(TrialKey.PER_QUERY)),
            pipeline=as_str(attrs.get(TrialKey.PIPELINE)),
            fingerprint=as_str(attrs.get(TrialKey.FINGERPRINT)),
            scores=as_scores(attrs.get(TrialKey.SCORES)),
        )


class ResultKey(StrEnum):
    """The keys of a result stored as a study attribute (test split, whole dev split, a
    reference baseline)."""

    SCORE = "score"
    ITEMS = "items"
    CALLS = "calls"
    CALLS_PER_ITEM = "calls_per_item"
    SCORES = "scores"
    """``[[item id, score], ...]``, as :attr:`TrialKey.SCORES`."""
    ORDER = "order"
    """A reference baseline's place in the report."""


def scores_json(scores: Mapping[str, float] | Sequence[tuple[str, float]]) -> list[list[Any]]:
    """Per-item scores as stored: ``[[id, score], ...]`` (read back by :func:`as_scores`)."""
    pairs = scores.items() if isinstance(scores, Mapping) else scores
    return [[item, score] for item, score in pairs]


@dataclass(frozen=True)
class StoredResult:
    """A result stored as a study attribute (test split, whole dev split, a reference)."""

    score: float | None = None
    items: int | None = None
    calls_per_item: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    order: int = 0
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StoredResult:
        return cls(
            score=as_float(data.get(ResultKey.SCORE)),
            items=as_int(data.get(ResultKey.ITEMS)),
            calls_per_item=as_float(data.get(ResultKey.CALLS_PER_ITEM)),
            scores=as_scores(data.get(ResultKey.SCORES)),
            order=as_int(data.get(ResultKey.ORDER)) or 0,
            raw=data,
        )


@dataclass(frozen=True)
class WinnerRecord:
    """How a single-objective search chooses its winner (:attr:`StudyKey.WINNER_RULE`).

    Attributes:
        rule: ``paired`` (the best trial replaces the baseline only when significantly better
            on the same items) or ``best``.
        p_threshold: the paired test's threshold (None: the default).
    """

    rule: str
    p_threshold: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "p_threshold": self.p_threshold}

    @classmethod
    def from_json(cls, value: Any) -> WinnerRecord | None:
        """The stored rule (None: absent or malformed)."""
        if not isinstance(value, dict) or not isinstance(value.get("rule"), str):
            return None
        return cls(value["rule"], as_float(value.get("p_threshold")))


def numbered_key(prefix: str, number: int) -> str:
    """The study attribute key of trial ``number``'s result under ``prefix``."""
    return f"{prefix}{number}"


def prefixed(attrs: Mapping[str, Any], prefix: str) -> dict[str, Mapping[str, Any]]:
    """The JSON objects stored under ``prefix + name``, by name."""
    return {
        key[len(prefix) :]: value
        for key, value in attrs.items()
        if key.startswith(prefix) and isinstance(value, dict)
    }


def numbered(attrs: Mapping[str, Any], prefix: str) -> dict[int, Mapping[str, Any]]:
    """The results stored under ``prefix + <trial number>``, by trial number."""
    return {int(name): value for name, value in prefixed(attrs, prefix).items() if name.isdigit()}


class StopKind(StrEnum):
    """Why a search stopped."""

    BUDGET = "budget"
    """A limit of the search budget (``limit``: calls, usd, seconds, tokens or trials)."""
    EXHAUSTED = "exhausted"
    """The space has nothing new: the grid is done, or no new feasible configuration."""
    INTERRUPTED = "interrupted"
    DONE = "done"


BUDGET_LIMITS = ("calls", "usd", "seconds", "tokens", "trials")

_EXHAUSTED_TEXT = {"grid": "grid exhausted", "feasible": "no new feasible configuration"}


@dataclass(frozen=True, eq=False)
class StopReason:
    """Why a search stopped, typed; ``str()`` reads as the CLI always printed it
    (``calls budget``, ``trials``, ``grid exhausted``, ``done`` ...), and a reason compares
    equal to that text."""

    kind: StopKind
    limit: str | None = None
    """For ``BUDGET``: which limit. For ``EXHAUSTED``: ``grid`` or ``feasible``."""

    @classmethod
    def budget(cls, limit: str) -> StopReason:
        if limit not in BUDGET_LIMITS:
            raise ValueError(f"unknown budget limit {limit!r}")
        return cls(StopKind.BUDGET, limit)

    @classmethod
    def exceeded(cls, error: BudgetExceeded) -> StopReason:
        """The reason of a run-level :class:`BudgetExceeded`."""
        return cls.budget(error.limit)

    @classmethod
    def grid_exhausted(cls) -> StopReason:
        return cls(StopKind.EXHAUSTED, "grid")

    @classmethod
    def no_feasible(cls) -> StopReason:
        return cls(StopKind.EXHAUSTED, "feasible")

    @classmethod
    def interrupted(cls) -> StopReason:
        return cls(StopKind.INTERRUPTED)

    @classmethod
    def done(cls) -> StopReason:
        return cls(StopKind.DONE)

    def __str__(self) -> str:
        if self.kind is StopKind.BUDGET:
            return "trials" if self.limit == "trials" else f"{self.limit} budget"
        if self.kind is StopKind.EXHAUSTED:
            return _EXHAUSTED_TEXT.get(self.limit or "", "exhausted")
        return self.kind.value

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StopReason):
            return (self.kind, self.limit) == (other.kind, other.limit)
        if isinstance(other, str):
            return str(self) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))
