"""A records file with a bad line gives one line that names the file, the line and the fix,
never pydantic's multi-line dump."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import archon.cli.eval_cmds as eval_cmds
from archon.cli import app
from archon.eval import RecordsError
from archon.eval.records import read_records
from archon.runtime.clients.fake import ScriptedClient

GOOD = '{"id": "a"}\n'


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("garbage in the middle", "not JSON"),
        ('{"answers": []}', "missing field 'id'"),
        ("[1, 2]", "not a JSON object"),
        ('{"id": "b", "sorce": 1}', "unknown field 'sorce'"),
        ('{"id": ["b"]}', "field 'id'"),
    ],
)
def test_a_bad_line_is_named_in_one_line(tmp_path: Path, bad: str, why: str) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text(GOOD * 11 + bad + "\n" + GOOD)
    with pytest.raises(RecordsError) as caught:
        read_records(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: line 12 is not a record (")
    assert why in message
    assert message.endswith("fix or delete that line, then resume")
    assert "pydantic" not in message and "validation error" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_the_cli_prints_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHON_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(
        eval_cmds, "make_client", lambda pipeline, *_: ScriptedClient(lambda request: "4")
    )
    pipe = tmp_path / "one.pipe"
    pipe.write_text('models { m = "fake/m" }\npipeline one { generate(models = [m]) }\n')
    records = tmp_path / "items.jsonl"
    records.write_text(GOOD + "not json at all\n")
    result = CliRunner().invoke(
        app,
        [
            "eval", str(pipe), "-d", "bigbench/arithmetic", "--limit", "2", "--no-cache",
            "--records", str(records), "--resume",
        ],
    )  # fmt: skip
    assert result.exit_code == 3
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert errors == [
        f"error: {records}: line 2 is not a record (not JSON): fix or delete that line, then resume"
    ]
    assert "Traceback" not in result.stderr and "validation error" not in result.stderr
