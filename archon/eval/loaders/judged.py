"""Judge-scored sets: MT-Bench questions (2 turns), Arena-Hard prompts and AlpacaEval-style
JSON. None has a ground-truth answer; they are scored by an LLM judge.

* MT-Bench: JSONL of ``{question_id, category, turns: [str, str], reference?: [str, str]}``;
  graded 1-10 per turn (``judge_single``).
* Arena-Hard: JSONL of ``{question_id, category, cluster, turns: [{content}]}``; compared
  pairwise with a baseline answer (``judge_pairwise``), read from a separate ``reference`` file:
  JSONL with ``question_id`` and either ``answer`` or Arena-Hard's model-answer layout
  (``choices[0].turns[0].content``).
* AlpacaEval: a JSON list of ``{instruction, output, generator?, dataset?}``; ``output`` is the
  reference answer for pairwise judging.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archon.eval.items import Dataset, DatasetError, EvalItem
from archon.eval.loaders.common import read_json, read_jsonl


def load_mt_bench(path: str | Path, name: str | None = None) -> Dataset:
    """MT-Bench questions (multi-turn)."""
    path = Path(path)
    items: list[EvalItem] = []
    for number, row in read_jsonl(path):
        turns = row.get("turns")
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) for t in turns):
            raise DatasetError(f"{path}:{number}: 'turns' must be a list of strings")
        reference = row.get("reference") or []
        items.append(
            EvalItem(
                id=str(row.get("question_id", number)),
                turns=tuple(turns),
                references=tuple(str(r) for r in reference),
                meta=(("category", str(row.get("category", ""))),),
            )
        )
    return Dataset(
        name=name or "mt_bench", items=tuple(items), metric="judge_single", source=str(path)
    )


def _reference_answer(row: dict[str, Any]) -> str | None:
    if isinstance(row.get("answer"), str):
        return str(row["answer"])
    try:
        return str(row["choices"][0]["turns"][0]["content"])
    except (KeyError, IndexError, TypeError):
        return None


def read_references(path: str | Path) -> dict[str, str]:
    """Baseline answers by question id (``answer`` or Arena-Hard model-answer records)."""
    path = Path(path)
    answers: dict[str, str] = {}
    for number, row in read_jsonl(path):
        answer = _reference_answer(row)
        if "question_id" not in row or answer is None:
            raise DatasetError(f"{path}:{number}: expected question_id and an answer")
        answers[str(row["question_id"])] = answer
    return answers


def load_arena_hard(
    path: str | Path, reference: str | Path | None = None, name: str | None = None
) -> Dataset:
    """Arena-Hard prompts, with baseline answers from ``reference`` when given."""
    path = Path(path)
    references = read_references(reference) if reference is not None else {}
    items: list[EvalItem] = []
    for number, row in read_jsonl(path):
        turns = row.get("turns")
        try:
            texts = tuple(str(t["content"]) for t in turns)  # type: ignore[union-attr]
        except (TypeError, KeyError) as e:
            raise DatasetError(f"{path}:{number}: 'turns' must be a list of {{content}}") from e
        if not texts:
            raise DatasetError(f"{path}:{number}: no turns")
        qid = str(row.get("question_id", number))
        items.append(
            EvalItem(
                id=qid,
                turns=texts,
                references=(references[qid],) if qid in references else (),
                meta=(
                    ("category", str(row.get("category", ""))),
                    ("cluster", str(row.get("cluster", ""))),
                ),
            )
        )
    return Dataset(
        name=name or "arena_hard", items=tuple(items), metric="judge_pairwise", source=str(path)
    )


def load_alpaca_eval(path: str | Path, name: str | None = None) -> Dataset:
    """AlpacaEval-style JSON: instructions with a reference ``output``."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a JSON list of {{instruction, output}}")
    items: list[EvalItem] = []
    for index, row in enumerate(data):
        if not isinstance(row, dict) or not isinstance(row.get("instruction"), str):
            raise DatasetError(f"{path}: entry {index} has no 'instruction'")
        output = row.get("output")
        items.append(
            EvalItem(
                id=str(row.get("id", index)),
                turns=(str(row["instruction"]),),
                references=(str(output),) if isinstance(output, str) else (),
                meta=tuple((k, str(row[k])) for k in ("dataset", "generator") if row.get(k)),
            )
        )
    return Dataset(
        name=name or "alpaca_eval", items=tuple(items), metric="judge_pairwise", source=str(path)
    )
