"""Helpers shared by the dataset loaders: reading JSON/JSONL files with located errors."""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from archon.eval.items import DatasetError


def read_text(path: Path) -> str:
    """A text file (``.gz`` transparently), as a located :class:`DatasetError` on failure."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                return handle.read()
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise DatasetError(f"{path}: cannot read ({e})") from e


def read_json(path: Path) -> Any:
    """A JSON document."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}:{e.lineno}:{e.colno}: invalid JSON ({e.msg})") from e


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-empty line of a JSONL file."""
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path}:{number}: invalid JSON ({e.msg})") from e
        if not isinstance(data, dict):
            raise DatasetError(f"{path}:{number}: expected a JSON object per line")
        yield number, data


def first_record(path: Path) -> Any:
    """The first JSON object of a JSONL file, or the whole JSON document (for detection)."""
    text = read_text(path)
    for line in text.splitlines():
        if line.strip():
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: neither JSON nor JSONL ({e.msg})") from e


def as_targets(value: Any, where: str) -> tuple[str, ...]:
    """A target field (string, number or list of them) as accepted answers."""
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value if v is not None)
    if isinstance(value, str | int | float):
        return (str(value),)
    raise DatasetError(f"{where}: target must be a string, a number or a list of them")


def shuffled(options: Sequence[str], key: str) -> list[int]:
    """A deterministic permutation of ``range(len(options))`` seeded by ``key``."""
    order = list(range(len(options)))
    random.Random(f"archon-options:{key}").shuffle(order)
    return order
