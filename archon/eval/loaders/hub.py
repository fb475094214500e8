"""Full benchmarks from the Hugging Face hub, through the optional ``datasets`` package.

``load_dataset("hf:gsm8k")`` (or ``"hf:mbpp/sanitized:train"``) downloads the named split with
``datasets.load_dataset`` and converts its records with the same functions that read the
local files, so a hub split and a downloaded file give the same items. Nothing here is needed
offline: the committed samples and local files load without ``datasets`` (install it with
``pip install 'archon-pipe[hub]'``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from archon.eval.items import Dataset, DatasetError
from archon.eval.loaders import contests, gsm8k, mbpp

Rows = Iterable[tuple[str, Mapping[str, Any]]]
Convert = Callable[[Rows, str, str], Dataset]


@dataclass(frozen=True)
class HubSource:
    """Where a benchmark lives on the hub and how its records become items."""

    path: str
    config: str | None
    split: str
    convert: Convert


HUB: Mapping[str, HubSource] = {
    "mbpp": HubSource("google-research-datasets/mbpp", "full", "test", mbpp.from_rows),
    "mbpp/sanitized": HubSource(
        "google-research-datasets/mbpp", "sanitized", "test", mbpp.from_rows
    ),
    "gsm8k": HubSource("openai/gsm8k", "main", "test", gsm8k.from_rows),
    "code_contests": HubSource("deepmind/code_contests", None, "test", contests.code_contests_rows),
    "apps": HubSource("codeparrot/apps", "all", "test", contests.apps_rows),
}
"""Benchmarks loadable as ``hf:NAME`` (default split in each entry)."""

PREFIX = "hf:"


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``hf:NAME[:SPLIT]`` -> ``(NAME, SPLIT or None)``."""
    name, _, split = spec.removeprefix(PREFIX).partition(":")
    return name, split or None


def _datasets() -> Any:
    try:
        return importlib.import_module("datasets")
    except ImportError as e:
        raise DatasetError(
            "loading from the hub needs the datasets package: pip install 'archon-pipe[hub]'"
            " (or download the file and give its path)"
        ) from e


def load_from_hub(spec: str) -> Dataset:
    """The dataset named by ``hf:NAME[:SPLIT]`` (see :data:`HUB`).

    Raises:
        DatasetError: an unknown name, ``datasets`` not installed, or the hub unreachable.
    """
    name, split = parse_spec(spec)
    source = HUB.get(name)
    if source is None:
        raise DatasetError(f"no hub dataset {name!r}; known: {', '.join(HUB)}")
    chosen = split or source.split
    library = _datasets()
    try:
        records = library.load_dataset(source.path, source.config, split=chosen)
    except Exception as e:  # network, missing split, parse errors: all say what failed
        raise DatasetError(
            f"could not load {source.path} ({source.config or 'default'}, split {chosen!r})"
            f" from the hub: {e}; download the file and give its path instead"
        ) from e
    where = f"{source.path}[{chosen}]"
    rows = ((f"{where}#{index}", row) for index, row in enumerate(records))
    label = f"{name}:{chosen}" if split else name
    return source.convert(rows, label, f"hub:{source.path}/{source.config or ''}/{chosen}")
