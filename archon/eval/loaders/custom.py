"""Your own JSONL files, with configurable field names, and MATH-style problems.

Custom JSONL: one object per line; the question is ``input_field`` (default ``input``), the
accepted answer(s) ``target_field`` (default ``target``; a string, a number or a list). An
optional ``choices_field`` (default: ``choices`` when present) holds options; the target is
then an option index, letter or text. ``id`` is used when present, else the line number.

MATH-style JSONL: ``problem`` and ``answer`` (or a ``solution`` whose last ``\\boxed{}`` is the
answer); scored with math-verify.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archon.eval.items import Dataset, DatasetError, EvalItem
from archon.eval.loaders.bigbench import bigbench_item
from archon.eval.loaders.common import as_targets, read_jsonl
from archon.eval.text import format_choices, letter

CHOICE_INSTRUCTION = "\n\nAnswer with the letter of the correct option."
MATH_INSTRUCTION = "\n\nPut your final answer within \\boxed{}."


def _choice_index(target: Any, choices: tuple[str, ...], where: str) -> int:
    if isinstance(target, int) and 0 <= target < len(choices):
        return target
    text = str(target).strip()
    letters = [letter(i) for i in range(len(choices))]
    if text.upper() in letters:
        return letters.index(text.upper())
    if text in choices:
        return choices.index(text)
    raise DatasetError(f"{where}: target {target!r} is not an option index, letter or text")


def _item_id(row: dict[str, Any], id_field: str, path: Path, number: int) -> str:
    value = row.get(id_field)
    return str(value) if value not in (None, "") else f"{path.stem}/{number}"


def load_jsonl(
    path: str | Path,
    *,
    input_field: str = "input",
    target_field: str = "target",
    id_field: str = "id",
    choices_field: str | None = None,
    instruction: str = "",
    name: str | None = None,
) -> Dataset:
    """Items from a JSONL file with the given field names (see the module docstring)."""
    path = Path(path)
    items: list[EvalItem] = []
    any_choices = False
    for number, row in read_jsonl(path):
        where = f"{path}:{number}"
        item_id = _item_id(row, id_field, path, number)
        if "target_scores" in row and target_field not in row and input_field == "input":
            items.append(
                bigbench_item(row, item_id, preferred="multiple_choice_grade", where=where)
            )
            any_choices = True
            continue
        question = row.get(input_field)
        if not isinstance(question, str):
            raise DatasetError(f"{where}: no string field {input_field!r} (use --input-field)")
        if target_field not in row:
            raise DatasetError(f"{where}: no field {target_field!r} (use --target-field)")
        field = choices_field or ("choices" if "choices" in row else None)
        options = row.get(field) if field else None
        if isinstance(options, list) and options:
            choices = tuple(str(o) for o in options)
            index = _choice_index(row[target_field], choices, where)
            suffix = instruction or CHOICE_INSTRUCTION
            query = f"{question}\n\nOptions:\n{format_choices(choices)}{suffix}"
            items.append(EvalItem.multiple_choice(item_id, query, choices, (index,)))
            any_choices = True
            continue
        targets = as_targets(row[target_field], where)
        items.append(EvalItem(id=item_id, turns=(question + instruction,), targets=targets))
    metric = "multiple_choice" if any_choices and all(i.choices for i in items) else "exact_match"
    return Dataset(name=name or path.stem, items=tuple(items), metric=metric, source=str(path))


def boxed_answer(solution: str) -> str | None:
    """The content of the last ``\\boxed{...}`` in ``solution`` (nested braces allowed)."""
    start = solution.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(solution)):
        if solution[j] == "{":
            depth += 1
        elif solution[j] == "}":
            depth -= 1
            if depth == 0:
                return solution[i + 1 : j]
    return None


def load_math(
    path: str | Path,
    *,
    input_field: str = "problem",
    target_field: str = "answer",
    id_field: str = "id",
    instruction: str = MATH_INSTRUCTION,
    name: str | None = None,
) -> Dataset:
    """MATH-style problems: ``problem`` plus ``answer`` (or a ``solution`` with ``\\boxed{}``)."""
    path = Path(path)
    items: list[EvalItem] = []
    for number, row in read_jsonl(path):
        where = f"{path}:{number}"
        problem = row.get(input_field)
        if not isinstance(problem, str):
            raise DatasetError(f"{where}: no string field {input_field!r} (use --input-field)")
        answer = row.get(target_field)
        if answer is None and isinstance(row.get("solution"), str):
            answer = boxed_answer(row["solution"])
        targets = as_targets(answer, where)
        if not targets:
            raise DatasetError(f"{where}: no {target_field!r} and no \\boxed{{}} in 'solution'")
        meta = tuple((k, str(row[k])) for k in ("level", "type", "subject") if row.get(k))
        items.append(
            EvalItem(
                id=_item_id(row, id_field, path, number),
                turns=(problem + instruction,),
                targets=targets,
                meta=meta,
            )
        )
    return Dataset(name=name or path.stem, items=tuple(items), metric="math", source=str(path))
