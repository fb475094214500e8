"""Deterministic dev/test splits by a seeded hash of each item id.

An item's split depends only on its id, the seed and the dev fraction -- not on the order of
the file or on which other items exist -- so a search that tunes on ``dev`` can never report
on an item it tuned on, and adding items to a dataset never moves old ones between splits.

Example:
    >>> split_of("HumanEval/0", seed=0) in ("dev", "test")
    True
"""

from __future__ import annotations

import hashlib
from typing import Literal

from archon.eval.items import Dataset

Split = Literal["dev", "test", "all"]
SPLITS: tuple[Split, ...] = ("dev", "test", "all")


def _unit(item_id: str, seed: int) -> float:
    digest = hashlib.sha256(f"archon-split:{seed}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(item_id: str, *, seed: int = 0, dev_fraction: float = 0.5) -> Literal["dev", "test"]:
    """Which split ``item_id`` belongs to."""
    if not 0.0 <= dev_fraction <= 1.0:
        raise ValueError("dev_fraction must be between 0 and 1")
    return "dev" if _unit(item_id, seed) < dev_fraction else "test"


def select_split(
    dataset: Dataset, split: Split, *, seed: int = 0, dev_fraction: float = 0.5
) -> Dataset:
    """The items of ``dataset`` in ``split`` (file order kept); ``all`` returns it unchanged."""
    if split == "all":
        return dataset
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    kept = [
        item
        for item in dataset.items
        if split_of(item.id, seed=seed, dev_fraction=dev_fraction) == split
    ]
    return dataset.with_items(kept)
