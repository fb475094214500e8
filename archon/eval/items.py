"""What an evaluation reads: :class:`EvalItem` (one question with its ground truth) and
:class:`Dataset` (named, ordered items plus the metric that scores them by default).

Items are frozen and carry everything a metric needs -- accepted answers, options, tests,
reference answers -- so metrics never look anything up elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from archon.errors import ArchonError
from archon.values import Message, TestCase


class DatasetError(ArchonError):
    """A dataset file or name could not be read as a dataset."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EvalItem(_Frozen):
    """One question of a dataset.

    Attributes:
        id: stable identifier (used by splits, records and resume).
        turns: the user turns; one for single-turn datasets, several for MT-Bench.
        system: an optional system message sent before the first turn.
        targets: accepted answers (any one is correct), for free-form metrics.
        choices: the options of a multiple-choice question, in the order shown.
        correct_choices: indices into ``choices`` that are correct.
        tests: executable test code (``assert`` statements or a ``check`` call) for code items.
        io_tests: stdin/stdout tests of a program (``TestCase(kind="io", stdin, stdout)``)
            for competitive-programming items (CodeContests, APPS).
        code_prefix: code the answer completes (e.g. HumanEval's signature and docstring),
            prepended when the extracted answer does not define ``entry_point`` itself.
        entry_point: the function the tests call.
        references: reference answers for judges, one per turn (may be empty).
        meta: free-form string attributes (category, benchmark, subtask...).
    """

    id: str = Field(min_length=1)
    turns: tuple[str, ...] = Field(min_length=1)
    system: str | None = None
    targets: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    correct_choices: tuple[int, ...] = ()
    tests: tuple[str, ...] = ()
    io_tests: tuple[TestCase, ...] = ()
    code_prefix: str = ""
    entry_point: str | None = None
    references: tuple[str, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()

    @model_validator(mode="after")
    def _choices_in_range(self) -> EvalItem:
        bad = [i for i in self.correct_choices if not 0 <= i < len(self.choices)]
        if bad:
            raise ValueError(f"item {self.id}: correct choice {bad[0]} is not an option index")
        return self

    @classmethod
    def multiple_choice(
        cls,
        item_id: str,
        query: str,
        choices: tuple[str, ...],
        correct: tuple[int, ...],
        meta: tuple[tuple[str, str], ...] = (),
    ) -> EvalItem:
        """A multiple-choice item; its free-form targets are the texts of the correct options."""
        return cls(
            id=item_id,
            turns=(query,),
            choices=choices,
            correct_choices=correct,
            targets=tuple(choices[i] for i in correct if 0 <= i < len(choices)),
            meta=meta,
        )

    @property
    def query(self) -> str | tuple[Message, ...]:
        """The first turn as :func:`archon.runtime.run` takes it (with the system message)."""
        if self.system is None:
            return self.turns[0]
        return (
            Message(role="system", content=self.system),
            Message(role="user", content=self.turns[0]),
        )

    def get(self, key: str, default: str = "") -> str:
        """The value of ``meta`` entry ``key``."""
        return next((v for k, v in self.meta if k == key), default)


class Dataset(_Frozen):
    """An ordered collection of uniquely named items and the metric that scores them.

    Attributes:
        name: short name shown in reports (``bigbench/arithmetic``, a file stem...).
        items: the items, in file order.
        metric: the registry name of the default metric (``exact_match``, ``code``...).
        source: where the items came from (a path or a package).
    """

    name: str
    items: tuple[EvalItem, ...]
    metric: str
    source: str = ""

    @model_validator(mode="after")
    def _unique_ids(self) -> Dataset:
        seen: set[str] = set()
        for item in self.items:
            if item.id in seen:
                raise ValueError(f"dataset {self.name}: duplicate item id {item.id!r}")
            seen.add(item.id)
        return self

    def __len__(self) -> int:
        return len(self.items)

    def with_items(self, items: Iterable[EvalItem]) -> Dataset:
        """The same dataset restricted to (or reordered as) ``items``."""
        return self.model_copy(update={"items": tuple(items)})

    def head(self, n: int | None) -> Dataset:
        """The first ``n`` items (all when ``n`` is None)."""
        return self if n is None else self.with_items(self.items[: max(0, n)])
