"""MBPP (Austin et al., 2021, "Program Synthesis with Large Language Models"): short Python
problems, each with three ``assert`` tests that also tell the function's name.

Two layouts load the same way (detected per record):

* the original JSONL: ``task_id``, ``text`` (the problem), ``code`` (a reference solution),
  ``test_setup_code``, ``test_list`` and ``challenge_test_list`` (extra, harder tests);
* the sanitized variant (JSON list or JSONL): ``task_id``, ``prompt``, ``code``,
  ``test_imports`` and ``test_list``.

The query states the problem and the ``test_list`` asserts (MBPP's own prompt format), so a
pipeline can run the tests it is given. An answer is graded, in the sandbox, on every assert of
``test_list`` and ``challenge_test_list``, each run after the setup code or imports.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from archon.eval.items import Dataset, DatasetError, EvalItem
from archon.eval.loaders.common import read_json, read_jsonl

INSTRUCTION = (
    "You are an expert Python programmer, and here is your task: {text}"
    " Your code should pass these tests:\n\n{tests}\n\n"
    "Reply with the complete function in one ```python code block."
)

_BUILTINS = frozenset(dir(builtins))


def _strings(value: Any, where: str, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DatasetError(f"{where}: {field!r} must be a list of strings")
    return tuple(v for v in value if v.strip())


def entry_point(asserts: Iterable[str]) -> str | None:
    """The function the asserts call: the first called plain name that is not a builtin
    (``assert math.isclose(area(2), 12.57)`` -> ``area``); None when there is none."""
    for line in asserts:
        try:
            tree = ast.parse(line)
        except SyntaxError:
            continue
        calls = sorted(
            (node for node in ast.walk(tree) if isinstance(node, ast.Call)),
            key=lambda node: (node.lineno, node.col_offset),
        )
        for call in calls:
            if isinstance(call.func, ast.Name) and call.func.id not in _BUILTINS:
                return call.func.id
    return None


def mbpp_item(row: Mapping[str, Any], where: str) -> EvalItem:
    """One MBPP record (original or sanitized layout) as an item."""
    text = row.get("text", row.get("prompt"))
    if not isinstance(text, str) or not text.strip():
        raise DatasetError(f"{where}: MBPP record without a 'text' (or 'prompt') string")
    shown = _strings(row.get("test_list"), where, "test_list")
    if not shown:
        raise DatasetError(f"{where}: MBPP record without 'test_list' asserts")
    hidden = _strings(row.get("challenge_test_list"), where, "challenge_test_list")
    setup = row.get("test_setup_code") or "\n".join(
        _strings(row.get("test_imports"), where, "test_imports")
    )
    if not isinstance(setup, str):
        raise DatasetError(f"{where}: 'test_setup_code' must be a string")
    prefix = f"{setup.strip()}\n" if setup.strip() else ""
    task = row.get("task_id")
    return EvalItem(
        id=f"mbpp/{task}" if task is not None else where,
        turns=(INSTRUCTION.format(text=text.strip(), tests="\n".join(shown)),),
        tests=tuple(f"{prefix}{line}\n" for line in (*shown, *hidden)),
        entry_point=entry_point(shown),
        meta=(("layout", "original" if "text" in row else "sanitized"),),
    )


def from_rows(rows: Iterable[tuple[str, Mapping[str, Any]]], name: str, source: str) -> Dataset:
    """Items from ``(where, record)`` pairs (a file's lines or a hub split)."""
    items = tuple(mbpp_item(row, where) for where, row in rows)
    return Dataset(name=name, items=items, metric="code", source=source)


def load(path: str | Path, name: str | None = None) -> Dataset:
    """MBPP problems from a JSONL file (either layout) or a sanitized JSON list."""
    path = Path(path)
    if path.suffix == ".json":
        data = read_json(path)
        if not isinstance(data, list):
            raise DatasetError(f"{path}: expected a JSON list of MBPP records")
        rows = [(f"{path}:{i}", r) for i, r in enumerate(data, 1) if isinstance(r, dict)]
    else:
        rows = [(f"{path}:{number}", r) for number, r in read_jsonl(path)]
    return from_rows(rows, name or "mbpp", str(path))
