"""Re-create the committed BIG-bench subsets from the ``bigbench==1.0.0`` sdist.

Usage (the sdist is downloaded, never installed; pip >= 24 refuses it, so use pip 23)::

    python3 -m venv /tmp/pip23 && /tmp/pip23/bin/pip install pip==23.2.1
    /tmp/pip23/bin/pip download --no-deps bigbench==1.0.0 -d /tmp/bb
    tar xzf /tmp/bb/bigbench-1.0.0.tar.gz -C /tmp/bb
    python3 scripts/bigbench_extract.py /tmp/bb/bigbench-1.0.0/bigbench/benchmark_tasks

Each output line is one example with its original fields (``input``, ``target``,
``target_scores``) plus ``id`` (``task/subtask/index`` in the original file), ``task``,
``subtask``, ``preferred_score`` and, where the task has one, ``task_prefix``. Examples are
drawn with a fixed seed, evenly from every subtask, and interleaved across subtasks so that any
prefix of the file is also balanced.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

TASKS = {
    "arithmetic": 100,
    "elementary_math_qa": 100,
    "strategyqa": 100,
    "logical_deduction": 99,
    "date_understanding": 100,
    "object_counting": 100,
}
# elementary_math_qa's subtasks are the same questions with different hints: keep one.
ONLY = {"elementary_math_qa": ("question_only",)}
SEED = 20240601


def subtasks(root: Path, task: str) -> list[tuple[str, dict]]:
    folder = root / task
    subs = sorted(p.parent for p in folder.glob("*/task.json"))
    if task in ONLY:
        subs = [p for p in subs if p.name in ONLY[task]]
    if not subs:
        return [("", json.loads((folder / "task.json").read_text()))]
    return [(p.name, json.loads((p / "task.json").read_text())) for p in subs]


def extract(root: Path, task: str, count: int) -> list[dict]:
    rng = random.Random(f"{SEED}:{task}")
    parts = subtasks(root, task)
    per = -(-count // len(parts))
    chosen: list[list[dict]] = []
    for name, data in parts:
        examples = data["examples"]
        indices = sorted(rng.sample(range(len(examples)), min(per, len(examples))))
        rows = []
        for index in indices:
            example = examples[index]
            row = {"id": "/".join(x for x in (task, name, str(index)) if x), "task": task}
            row["subtask"] = name
            row.update({k: example[k] for k in ("input", "target", "target_scores") if k in example})
            row["preferred_score"] = data.get("preferred_score", "exact_str_match")
            if data.get("task_prefix"):
                row["task_prefix"] = data["task_prefix"]
            rows.append(row)
        chosen.append(rows)
    interleaved = [row for group in zip(*chosen, strict=False) for row in group]
    leftovers = [row for rows in chosen for row in rows[len(interleaved) // len(chosen) :]]
    return (interleaved + leftovers)[:count]


def main() -> None:
    root = Path(sys.argv[1])
    out = Path(__file__).resolve().parents[1] / "archon" / "eval" / "data" / "bigbench"
    for task, count in TASKS.items():
        rows = extract(root, task, count)
        with (out / f"{task}.jsonl").open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{task}: {len(rows)}")


if __name__ == "__main__":
    main()
