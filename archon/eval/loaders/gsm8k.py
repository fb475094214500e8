"""GSM8K (Cobbe et al., 2021, "Training Verifiers to Solve Math Word Problems"): grade-school
word problems; ``question``, and an ``answer`` whose worked solution ends with ``#### N``.

The target is ``N`` (thousands separators removed); scored by exact match, where a numeric
target matches the last number of the final answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from archon.eval.items import Dataset, DatasetError, EvalItem
from archon.eval.loaders.common import read_jsonl

INSTRUCTION = (
    "\n\nSolve the problem step by step, then give the final answer on the last line as"
    ' "The answer is N."'
)


def final_answer(answer: str) -> str | None:
    """The number after the last ``####`` of a GSM8K solution (None when there is none)."""
    _, mark, tail = answer.rpartition("####")
    if not mark:
        return None
    value = tail.strip().replace(",", "").rstrip(".")
    return value or None


def gsm8k_item(row: Mapping[str, Any], item_id: str, where: str) -> EvalItem:
    """One GSM8K record as an item."""
    question, answer = row.get("question"), row.get("answer")
    if not isinstance(question, str) or not isinstance(answer, str):
        raise DatasetError(f"{where}: GSM8K record needs 'question' and 'answer' strings")
    target = final_answer(answer)
    if target is None:
        raise DatasetError(f"{where}: the answer has no '#### N' final line")
    return EvalItem(
        id=str(row.get("id") or item_id),
        turns=(question.strip() + INSTRUCTION,),
        targets=(target,),
        references=(answer,),
    )


def from_rows(rows: Iterable[tuple[str, Mapping[str, Any]]], name: str, source: str) -> Dataset:
    """Items from ``(where, record)`` pairs, numbered in order (``gsm8k/0``, ...)."""
    items = tuple(
        gsm8k_item(row, f"{name}/{index}", where) for index, (where, row) in enumerate(rows)
    )
    return Dataset(name=name, items=items, metric="exact_match", source=source)


def load(path: str | Path, name: str | None = None) -> Dataset:
    """GSM8K problems from a JSONL file (``train.jsonl`` / ``test.jsonl`` of the release)."""
    path = Path(path)
    rows = [(f"{path}:{number}", row) for number, row in read_jsonl(path)]
    return from_rows(rows, name or "gsm8k", str(path))
