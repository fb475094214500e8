"""BIG-bench JSON tasks: any ``task.json`` (with subtask folders) and the committed JSONL
subsets extracted from it (one example per line, with ``id``, ``task`` and ``subtask``).

An example with ``target_scores`` in a task whose preferred score is
``multiple_choice_grade`` becomes a multiple-choice item: its options are shown lettered, in a
deterministic per-item shuffled order (the source files often list the right answer first);
any other example is free-form, scored by exact match against ``target`` (a string or a list
of accepted strings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archon.eval.items import Dataset, DatasetError, EvalItem
from archon.eval.loaders.common import as_targets, read_json, read_jsonl, shuffled
from archon.eval.text import format_choices

FREE_INSTRUCTION = "\n\nAnswer with only the final answer."
CHOICE_INSTRUCTION = "\n\nAnswer with the letter of the correct option."


def _is_choice(example: dict[str, Any], preferred: str) -> bool:
    scores = example.get("target_scores")
    has_target = example.get("target") not in (None, "", [])
    return (
        isinstance(scores, dict)
        and bool(scores)
        and (preferred == "multiple_choice_grade" or not has_target)
    )


def bigbench_item(
    example: dict[str, Any], item_id: str, *, preferred: str, prefix: str = "", where: str = ""
) -> EvalItem:
    """One BIG-bench example as an item."""
    where = where or item_id
    text = example.get("input")
    if not isinstance(text, str):
        raise DatasetError(f"{where}: example has no 'input' string")
    meta = tuple((key, str(example[key])) for key in ("task", "subtask") if example.get(key))
    if _is_choice(example, preferred):
        scores: dict[str, Any] = example["target_scores"]
        names = list(scores)
        best = max(float(v) for v in scores.values())
        order = shuffled(names, item_id)
        choices = tuple(names[i] for i in order)
        correct = tuple(i for i, j in enumerate(order) if float(scores[names[j]]) == best > 0)
        query = f"{prefix}{text}\n\nOptions:\n{format_choices(choices)}{CHOICE_INSTRUCTION}"
        return EvalItem.multiple_choice(item_id, query, choices, correct, meta)
    targets = as_targets(example.get("target"), where)
    if not targets:
        raise DatasetError(f"{where}: example has neither 'target' nor 'target_scores'")
    return EvalItem(
        id=item_id, turns=(f"{prefix}{text}{FREE_INSTRUCTION}",), targets=targets, meta=meta
    )


def _metric(preferred: str) -> str:
    return "multiple_choice" if preferred == "multiple_choice_grade" else "exact_match"


def _task_files(path: Path) -> tuple[Path, list[Path]]:
    root = path if path.is_dir() else path.parent
    main = root / "task.json"
    subs = sorted(p for p in root.glob("*/task.json"))
    return main, subs


def load_task(path: str | Path) -> Dataset:
    """A BIG-bench task from its ``task.json`` (or folder); subtask folders are included,
    with ids ``task/subtask/index``."""
    path = Path(path)
    main, subs = _task_files(path)
    if not main.exists():
        raise DatasetError(f"{path}: no task.json here")
    data = read_json(main)
    if not isinstance(data, dict):
        raise DatasetError(f"{main}: expected a BIG-bench task object")
    name = str(data.get("name") or main.parent.name)
    parts: list[tuple[str, dict[str, Any]]] = []
    if data.get("examples"):
        parts.append(("", data))
    for sub in subs:
        sub_data = read_json(sub)
        if isinstance(sub_data, dict) and sub_data.get("examples"):
            parts.append((sub.parent.name, sub_data))
    if not parts:
        raise DatasetError(f"{main}: the task has no examples")
    items: list[EvalItem] = []
    preferred = str(
        parts[0][1].get("preferred_score", data.get("preferred_score", "exact_str_match"))
    )
    for subtask, task in parts:
        prefix = str(task.get("task_prefix") or "")
        sub_preferred = str(task.get("preferred_score", preferred))
        for index, example in enumerate(task["examples"]):
            item_id = "/".join(x for x in (name, subtask, str(index)) if x)
            row = {**example, "task": name, "subtask": subtask}
            items.append(
                bigbench_item(
                    row, item_id, preferred=sub_preferred, prefix=prefix, where=f"{main}: {item_id}"
                )
            )
    return Dataset(
        name=f"bigbench/{name}", items=tuple(items), metric=_metric(preferred), source=str(main)
    )


def load_jsonl(path: str | Path, name: str | None = None) -> Dataset:
    """A committed BIG-bench subset: one example per line with ``id`` and ``preferred_score``."""
    path = Path(path)
    items: list[EvalItem] = []
    preferred = "exact_str_match"
    for number, row in read_jsonl(path):
        preferred = str(row.get("preferred_score", preferred)) if not items else preferred
        item_id = str(row.get("id") or f"{path.stem}/{number}")
        items.append(
            bigbench_item(
                row,
                item_id,
                preferred=str(row.get("preferred_score", preferred)),
                prefix=str(row.get("task_prefix") or ""),
                where=f"{path}:{number}",
            )
        )
    return Dataset(
        name=name or f"bigbench/{path.stem}",
        items=tuple(items),
        metric=_metric(preferred),
        source=str(path),
    )
