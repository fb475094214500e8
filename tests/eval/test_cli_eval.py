"""``archon eval`` through the CLI, with the ScriptedClient standing in for the models."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import archon.cli.eval_cmds as eval_cmds
from archon.cli import app
from archon.ir import Pipeline
from archon.runtime.clients.fake import ScriptedClient, last_user
from archon.values import CompletionRequest

PIPE = """\
models { m = "fake/m" }
pipeline one { generate(models = [m], temperature = 0.0, max_tokens = int(16, 64)) }
"""


def arithmetic(request: CompletionRequest) -> str:
    """Right on additions, wrong on everything else."""
    found = re.search(r"What is (-?\d+) plus (-?\d+)\?", last_user(request))
    return str(int(found.group(1)) + int(found.group(2))) if found else "no idea"


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[ScriptedClient]:
    monkeypatch.setenv("ARCHON_HOME", str(tmp_path / "home"))
    made: list[ScriptedClient] = []

    def fake(pipeline: Pipeline, *_: object) -> ScriptedClient:
        made.append(ScriptedClient(arithmetic))
        return made[-1]

    monkeypatch.setattr(eval_cmds, "make_client", fake)
    return made


@pytest.fixture
def pipe(tmp_path: Path) -> Path:
    path = tmp_path / "one.pipe"
    path.write_text(PIPE)
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["eval", *args])
    return result.exit_code, result.stdout, result.stderr


def test_eval_prints_a_table_and_writes_json(
    pipe: Path, tmp_path: Path, scripted: list[ScriptedClient]
) -> None:
    out, records = tmp_path / "r.json", tmp_path / "items.jsonl"
    code, stdout, stderr = invoke(
        str(pipe), "-d", "bigbench/arithmetic", "--limit", "20", "--no-cache",
        "--out", str(out), "--records", str(records),
    )  # fmt: skip
    assert code == 0, stderr
    assert "accuracy" in stdout and "calls / query" in stdout
    assert "max_tokens" in stderr  # the hole took its default, and the user is told
    report = json.loads(out.read_text())
    # The first 20 items hold exactly 5 additions (one per subtask group of 4 kinds).
    assert report["done"] == 20 and report["accuracy"] == pytest.approx(5 / 20)
    assert report["cost"]["per_item"]["calls"] == 1.0
    assert len(records.read_text().splitlines()) == 20


def test_split_and_resume(pipe: Path, tmp_path: Path, scripted: list[ScriptedClient]) -> None:
    records = tmp_path / "items.jsonl"
    args = [str(pipe), "-d", "bigbench/arithmetic", "--split", "dev", "--no-cache", "--json"]
    code, stdout, _ = invoke(*args, "--records", str(records), "--max-calls", "3")
    assert code == 3
    assert json.loads(stdout)["done"] == 3
    code, stdout, _ = invoke(*args, "--records", str(records), "--resume")
    report = json.loads(stdout)
    assert code == 0 and report["resumed"] == 3 and report["done"] == report["total"] < 100
    assert scripted[-1].calls == report["total"] - 3


def test_custom_jsonl_fields(pipe: Path, scripted: list[ScriptedClient]) -> None:
    data = Path(__file__).parents[2] / "examples" / "data" / "custom" / "qa.jsonl"
    code, stdout, _ = invoke(
        str(pipe), "-d", str(data), "--input-field", "question", "--target-field", "answer",
        "--no-cache", "--json",
    )  # fmt: skip
    # Only "What is 12 plus 30?" is an addition the scripted model gets right.
    assert code == 0 and json.loads(stdout)["accuracy"] == pytest.approx(1 / 6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-d", "nope"], "no dataset"),
        (["-d", "bigbench/arithmetic", "--metric", "exact_mach"], "did you mean"),
        (["-d", "bigbench/arithmetic", "--split", "train"], "--split"),
        (["-d", "bigbench/arithmetic", "--resume"], "--records"),
    ],
)
def test_usage_errors_exit_2(
    pipe: Path, scripted: list[ScriptedClient], args: list[str], message: str
) -> None:
    code, _, stderr = invoke(str(pipe), *args)
    assert code == 2 and message in stderr


def test_judge_metric_without_a_judge_fails_every_item(
    pipe: Path, scripted: list[ScriptedClient]
) -> None:
    code, _, stderr = invoke(str(pipe), "-d", "mt_bench", "--limit", "2", "--no-cache")
    assert code == 3 and "judge model" in stderr


def test_bad_pipe_is_a_diagnostic(tmp_path: Path, scripted: list[ScriptedClient]) -> None:
    bad = tmp_path / "bad.pipe"
    bad.write_text('pipeline x { generate(models = ["m"], samplez = 2) }\n')
    code, _, _ = invoke(str(bad), "-d", "bigbench/arithmetic")
    assert code == 1
