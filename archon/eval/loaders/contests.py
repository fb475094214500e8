"""Competitive programming with stdin/stdout tests: CodeContests (Li et al., 2022, "Competition-
Level Code Generation with AlphaCode") and APPS (Hendrycks et al., 2021).

* CodeContests: ``name``, ``description``, and ``public_tests`` / ``private_tests`` /
  ``generated_tests``, each ``{"input": [...], "output": [...]}``. Public tests are the
  examples the statement shows (``origin="query"``); all three sets grade an answer.
* APPS: ``problem_id``, ``question``, ``input_output`` (a JSON string or object with
  ``inputs`` and ``outputs``), ``difficulty``. Call-based problems (``fn_name``: a function
  called with arguments instead of a program reading stdin) are skipped, with a warning.

Each test becomes ``TestCase(kind="io", stdin=..., stdout=...)`` in :attr:`EvalItem.io_tests`;
the ``code`` metric runs the program on ``stdin`` in the sandbox and compares its output with
``stdout`` after normalising whitespace.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from archon.eval.items import Dataset, DatasetError, EvalItem
from archon.eval.loaders.common import read_jsonl
from archon.values import TestCase

logger = logging.getLogger(__name__)

INSTRUCTION = (
    "{statement}\n\nWrite a Python 3 program that reads the input from standard input and"
    " writes the answer to standard output. Reply with the complete program in one ```python"
    " code block."
)

CODE_CONTESTS_SETS = ("public_tests", "private_tests", "generated_tests")


def _io_tests(
    inputs: Any, outputs: Any, label: str, where: str, *, stated: bool
) -> tuple[TestCase, ...]:
    if inputs is None and outputs is None:
        return ()
    if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
        raise DatasetError(f"{where}: {label} needs equally long input and output lists")
    return tuple(
        TestCase(
            text=f"{label} {index + 1}",
            kind="io",
            stdin=str(stdin),
            stdout=str(stdout),
            origin="query" if stated else "model",
        )
        for index, (stdin, stdout) in enumerate(zip(inputs, outputs, strict=True))
    )


def code_contests_item(row: Mapping[str, Any], where: str) -> EvalItem:
    """One CodeContests problem as an item with stdin/stdout tests."""
    name, statement = row.get("name"), row.get("description")
    if not isinstance(name, str) or not isinstance(statement, str):
        raise DatasetError(f"{where}: CodeContests record needs 'name' and 'description'")
    tests: tuple[TestCase, ...] = ()
    for field in CODE_CONTESTS_SETS:
        group = row.get(field) or {}
        if not isinstance(group, dict):
            raise DatasetError(f"{where}: {field!r} must be an object with input/output lists")
        label = field.removesuffix("_tests")
        tests += _io_tests(
            group.get("input"), group.get("output"), label, where, stated=label == "public"
        )
    if not tests:
        raise DatasetError(f"{where}: problem {name!r} has no tests")
    meta = tuple((k, str(row[k])) for k in ("difficulty", "source") if row.get(k) is not None)
    return EvalItem(
        id=name,
        turns=(INSTRUCTION.format(statement=statement.strip()),),
        io_tests=tests,
        meta=meta,
    )


def _apps_io(row: Mapping[str, Any], where: str) -> dict[str, Any]:
    spec = row.get("input_output")
    if isinstance(spec, str):
        try:
            spec = json.loads(spec) if spec.strip() else {}
        except json.JSONDecodeError as e:
            raise DatasetError(f"{where}: 'input_output' is not valid JSON ({e.msg})") from e
    if not isinstance(spec, dict):
        raise DatasetError(f"{where}: 'input_output' must be an object (or its JSON text)")
    return spec


def apps_item(row: Mapping[str, Any], where: str) -> EvalItem | None:
    """One APPS problem as an item, or None for a call-based problem (not stdin/stdout)."""
    question = row.get("question")
    if not isinstance(question, str):
        raise DatasetError(f"{where}: APPS record needs a 'question' string")
    spec = _apps_io(row, where)
    if spec.get("fn_name"):
        return None
    tests = _io_tests(spec.get("inputs"), spec.get("outputs"), "test", where, stated=False)
    if not tests:
        raise DatasetError(f"{where}: problem has no tests")
    meta = (("difficulty", str(row["difficulty"])),) if row.get("difficulty") else ()
    return EvalItem(
        id=f"apps/{row.get('problem_id', where)}",
        turns=(INSTRUCTION.format(statement=question.strip()),),
        io_tests=tests,
        meta=meta,
    )


def code_contests_rows(
    rows: Iterable[tuple[str, Mapping[str, Any]]], name: str, source: str
) -> Dataset:
    """A CodeContests dataset from ``(where, record)`` pairs."""
    items = tuple(code_contests_item(row, where) for where, row in rows)
    return Dataset(name=name, items=items, metric="code", source=source)


def apps_rows(rows: Iterable[tuple[str, Mapping[str, Any]]], name: str, source: str) -> Dataset:
    """An APPS dataset from ``(where, record)`` pairs (call-based problems left out)."""
    items: list[EvalItem] = []
    skipped = 0
    for where, row in rows:
        item = apps_item(row, where)
        if item is None:
            skipped += 1
        else:
            items.append(item)
    if skipped:
        logger.warning("%s: skipped %d call-based APPS problems (not stdin/stdout)", name, skipped)
    return Dataset(name=name, items=tuple(items), metric="code", source=source)


def _lines(path: Path) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{path}:{number}", row) for number, row in read_jsonl(path)]


def load_code_contests(path: str | Path, name: str | None = None) -> Dataset:
    """CodeContests problems from a JSONL file (one problem per line)."""
    path = Path(path)
    return code_contests_rows(_lines(path), name or "code_contests", str(path))


def load_apps(path: str | Path, name: str | None = None) -> Dataset:
    """APPS problems from a JSONL file (one problem per line)."""
    path = Path(path)
    return apps_rows(_lines(path), name or "apps", str(path))
