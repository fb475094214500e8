"""MBPP, GSM8K, CodeContests and APPS: the committed samples, local files of the full
formats, format detection, located errors, and the hub path through a fake ``datasets``."""

from __future__ import annotations

import asyncio
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from archon.eval import DatasetError, EvalItem, load_dataset
from archon.eval.datasets import default_data_dir, detect_format
from archon.eval.loaders.gsm8k import final_answer
from archon.eval.metrics import MetricContext, default_metrics, sandbox_runner
from archon.runtime import Limits
from archon.runtime.clients.fake import ScriptedClient

DATA = default_data_dir()


def test_mbpp_original_layout() -> None:
    dataset = load_dataset("mbpp")
    assert dataset.metric == "code" and len(dataset) == 5
    first = dataset.items[0]
    assert first.id == "mbpp/1" and first.entry_point == "digit_sum"
    query = first.turns[0]
    assert "sum of the digits" in query and "assert digit_sum(123) == 6" in query
    assert "10 ** 12" not in query  # challenge tests grade but are not shown
    assert len(first.tests) == 4 and first.tests[-1].startswith("assert digit_sum(10 ** 12)")
    with_setup = next(i for i in dataset.items if i.id == "mbpp/5")
    assert all(test.startswith("import heapq\n") for test in with_setup.tests)


def test_mbpp_sanitized_layout_and_detection() -> None:
    dataset = load_dataset("mbpp/sanitized")
    assert len(dataset) == 3 and dataset.metric == "code"
    hyp = dataset.items[0]
    assert hyp.entry_point == "hypotenuse"  # not "math": the call inside isclose
    assert all(test.startswith("import math\n") for test in hyp.tests)
    assert detect_format(DATA / "mbpp" / "sanitized-sample.json") == "mbpp"
    assert detect_format(DATA / "mbpp" / "sample.jsonl") == "mbpp"


def test_mbpp_reference_solutions_pass_their_tests() -> None:
    metric = default_metrics().build("code")
    ctx = MetricContext(client=ScriptedClient(), limits=Limits(), runner=sandbox_runner)
    rows = [json.loads(line) for line in (DATA / "mbpp" / "sample.jsonl").read_text().splitlines()]
    dataset = load_dataset("mbpp")

    async def grade(item: EvalItem, code: str) -> bool | None:
        return (await metric.score(item, (f"```python\n{code}\n```",), ctx)).correct

    for item, row in zip(dataset.items, rows, strict=True):
        assert asyncio.run(grade(item, row["code"])), item.id
    assert asyncio.run(grade(dataset.items[0], "def digit_sum(n):\n    return 0")) is False


def test_gsm8k_targets_come_from_the_final_line() -> None:
    dataset = load_dataset("gsm8k")
    assert dataset.metric == "exact_match" and len(dataset) == 5
    assert [i.targets for i in dataset.items] == [("15",), ("190",), ("1075",), ("16",), ("18",)]
    assert dataset.items[0].id == "gsm8k/0" and "The answer is N" in dataset.items[0].turns[0]
    assert final_answer("work\n#### 3,400.") == "3400" and final_answer("no mark") is None
    assert detect_format(DATA / "gsm8k" / "sample.jsonl") == "gsm8k"


def test_code_contests_io_tests() -> None:
    dataset = load_dataset("code_contests")
    assert dataset.metric == "code" and len(dataset) == 3
    first = dataset.items[0]
    assert first.tests == () and len(first.io_tests) == 3
    public, private, generated = first.io_tests
    assert (public.kind, public.stdin, public.stdout, public.origin) == (
        "io",
        "2 3\n",
        "5\n",
        "query",
    )
    assert private.text == "private 1" and generated.text == "generated 1"
    assert private.origin == "model"  # hidden: not stated by the query
    assert "standard input" in first.turns[0] and "Print their sum" in first.turns[0]
    assert len(dataset.items[2].io_tests) == 2  # an empty generated set is fine
    assert detect_format(DATA / "code_contests" / "sample.jsonl") == "code_contests"


def test_apps_io_tests_and_call_based_problems_skipped(caplog: pytest.LogCaptureFixture) -> None:
    dataset = load_dataset("apps")
    assert [i.id for i in dataset.items] == ["apps/1", "apps/2"]
    assert "call-based" in caplog.text
    factorial = dataset.items[0]
    assert [(t.stdin, t.stdout) for t in factorial.io_tests][1] == ("0\n", "1\n")
    assert factorial.get("difficulty") == "introductory"
    assert detect_format(DATA / "apps" / "sample.jsonl") == "apps"


@pytest.mark.parametrize(
    ("fmt", "row", "message"),
    [
        ("mbpp", {"task_id": 1, "text": "x", "test_list": []}, "test_list"),
        ("mbpp", {"task_id": 1, "test_list": ["assert f(1)"]}, "text"),
        ("gsm8k", {"question": "q", "answer": "no final line"}, "####"),
        ("code_contests", {"name": "n", "description": "d"}, "no tests"),
        (
            "code_contests",
            {"name": "n", "description": "d", "public_tests": {"input": ["1"], "output": []}},
            "equally long",
        ),
        ("apps", {"question": "q", "input_output": "{not json"}, "valid JSON"),
    ],
)
def test_malformed_records_are_located_errors(
    tmp_path: Path, fmt: Any, row: dict[str, Any], message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(DatasetError, match=message) as caught:
        load_dataset(path, fmt=fmt)
    assert "bad.jsonl:1" in str(caught.value)


class FakeDatasets(types.ModuleType):
    """Stands in for the ``datasets`` package: records what was asked, returns rows."""

    def __init__(self, rows: list[dict[str, Any]], fail: bool = False) -> None:
        super().__init__("datasets")
        self.rows = rows
        self.fail = fail
        self.asked: list[tuple[str, str | None, str]] = []

    def load_dataset(self, path: str, name: str | None = None, *, split: str) -> list[Any]:
        self.asked.append((path, name, split))
        if self.fail:
            raise ConnectionError("network unreachable")
        return self.rows


def test_hub_loading_goes_through_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [json.loads(line) for line in (DATA / "gsm8k" / "sample.jsonl").read_text().splitlines()]
    fake = FakeDatasets(rows)
    monkeypatch.setitem(sys.modules, "datasets", fake)
    dataset = load_dataset("hf:gsm8k")
    assert fake.asked == [("openai/gsm8k", "main", "test")]
    assert dataset.items == load_dataset("gsm8k").items  # same converter as the local file
    fake.rows = json.loads((DATA / "mbpp" / "sanitized-sample.json").read_text())
    sanitized = load_dataset("hf:mbpp/sanitized:prompt")
    assert fake.asked[-1] == ("google-research-datasets/mbpp", "sanitized", "prompt")
    assert sanitized.name == "mbpp/sanitized:prompt" and len(sanitized) == 3


def test_hub_errors_say_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", FakeDatasets([], fail=True))
    with pytest.raises(DatasetError, match=r"network unreachable.*give its path"):
        load_dataset("hf:code_contests")
    with pytest.raises(DatasetError, match="no hub dataset 'nope'"):
        load_dataset("hf:nope")
    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed
    with pytest.raises(DatasetError, match=r"archon-pipe\[hub\]"):
        load_dataset("hf:gsm8k")
