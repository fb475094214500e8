"""MixEval (2024-06-01) free-form and multiple-choice files: a JSON object mapping an id to
``{problem_type, context, prompt, target, benchmark_name}`` (plus ``options`` for multiple
choice, whose ``target`` is a list of correct option indices).

Prompts follow MixEval's own formatting: the context (when present) before the question, the
options lettered, and a short instruction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archon.eval.items import Dataset, DatasetError, EvalItem
from archon.eval.loaders.common import as_targets, read_json
from archon.eval.text import format_choices

FREE_INSTRUCTION = "\nAnswer the question shortly."
CHOICE_INSTRUCTION = "\nAnswer with the option letter from the given choices directly."


def _question(row: dict[str, Any]) -> str:
    context = row.get("context")
    prompt = str(row.get("prompt") or "")
    return f"{context}\n{prompt}" if isinstance(context, str) and context.strip() else prompt


def _item(item_id: str, row: dict[str, Any], where: str) -> EvalItem:
    meta = (("benchmark", str(row.get("benchmark_name", ""))),)
    if not row.get("prompt"):
        raise DatasetError(f"{where}: no 'prompt'")
    if row.get("problem_type") == "multiple-choice" or "options" in row:
        options = row.get("options")
        if not isinstance(options, list) or not options:
            raise DatasetError(f"{where}: a multiple-choice problem needs 'options'")
        choices = tuple(str(o) for o in options)
        correct = tuple(int(t) for t in row.get("target") or ())
        if not correct or any(not 0 <= c < len(choices) for c in correct):
            raise DatasetError(f"{where}: 'target' must list option indices")
        query = f"{_question(row)}\n{format_choices(choices)}{CHOICE_INSTRUCTION}"
        return EvalItem.multiple_choice(item_id, query, choices, correct, meta)
    targets = as_targets(row.get("target"), where)
    if not targets:
        raise DatasetError(f"{where}: no 'target' answers")
    return EvalItem(
        id=item_id, turns=(_question(row) + FREE_INSTRUCTION,), targets=targets, meta=meta
    )


def load(path: str | Path, name: str | None = None) -> Dataset:
    """A MixEval file (free-form or multiple-choice)."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object of id -> problem")
    items = tuple(
        _item(str(key), row, f"{path}: item {key}")
        for key, row in data.items()
        if isinstance(row, dict)
    )
    if not items:
        raise DatasetError(f"{path}: no problems")
    metric = "multiple_choice" if all(i.choices for i in items) else "freeform"
    return Dataset(
        name=name or f"mixeval/{path.stem}", items=items, metric=metric, source=str(path)
    )
