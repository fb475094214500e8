"""archon check / fmt / graph / kinds: exit codes, outputs, JSON formats."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archon.cli import app
from archon.layers import default_registry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
runner = CliRunner()

GOOD = """
models { m = "local/qwen2.5-coder-0.5b" }
pipeline p {
  gen = generate(models = [m], samples = int(1, 3))
  optional critique(model = m)
  rank(model = m, top_k = 1)
}
"""

BAD = """pipeline p {
  generate(models = ["x"])
  rank(topk = 3, model = "x")
}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_check_every_example_passes() -> None:
    files = sorted(str(p) for p in EXAMPLES.glob("*.pipe"))
    assert len(files) >= 8
    result = runner.invoke(app, ["check", *files])
    assert result.exit_code == 0, result.output
    assert result.stdout.count(": ok") == len(files)


def test_check_reports_errors_with_location_and_exit_1(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.pipe", BAD)
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    assert f"{path}:3:8: error[E220]: rank() has no parameter 'topk'" in result.stderr
    assert "did you mean 'top_k'?" in result.stderr
    assert "^^^^" in result.stderr


def test_check_json_reports_holes_cost_and_diagnostics(tmp_path: Path) -> None:
    good = write(tmp_path, "good.pipe", GOOD)
    bad = write(tmp_path, "bad.pipe", BAD)
    result = runner.invoke(app, ["check", "--format", "json", str(good), str(bad)])
    assert result.exit_code == 1
    reports = json.loads(result.stdout)
    assert [r["ok"] for r in reports] == [True, False]
    assert reports[0]["holes"] == ["gen.samples", "critique_1.enabled"]
    assert reports[0]["search_space"] == 6
    cost = reports[0]["cost_per_query"]
    # generate 1-3 samples; critique one call per candidate when present; rank 1 call.
    assert (cost["min_calls"], cost["max_calls"]) == (1, 7)
    assert reports[1]["diagnostics"][0]["code"] == "E220"
    assert reports[1]["diagnostics"][0]["span"]["line"] == 3


def test_check_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(tmp_path / "nope.pipe")])
    assert result.exit_code == 2
    assert "no such file" in result.stderr


def test_check_binary_junk_gives_a_diagnostic_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "junk.pipe"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    assert "error[E100]" in result.stderr
    assert "Traceback" not in result.output


def test_fmt_check_rewrite_and_idempotence(tmp_path: Path) -> None:
    path = write(tmp_path, "ugly.pipe", 'pipeline p{generate(models=["m"])   # keep me\n}\n')
    check = runner.invoke(app, ["fmt", "--check", str(path)])
    assert check.exit_code == 1
    assert "would reformat" in check.stderr
    assert runner.invoke(app, ["fmt", str(path)]).exit_code == 0
    formatted = path.read_text()
    assert 'generate(models = ["m"])' in formatted and "# keep me" in formatted
    assert runner.invoke(app, ["fmt", "--check", str(path)]).exit_code == 0
    assert runner.invoke(app, ["fmt", str(path)]).exit_code == 0
    assert path.read_text() == formatted


def test_fmt_leaves_a_file_with_errors_untouched(tmp_path: Path) -> None:
    text = 'pipeline p { generate(models = ["m"] }\n'
    path = write(tmp_path, "broken.pipe", text)
    result = runner.invoke(app, ["fmt", str(path)])
    assert result.exit_code == 1
    assert "error[E10" in result.stderr
    assert path.read_text() == text


@pytest.mark.parametrize(("fmt", "needle"), [("dot", "digraph"), ("mermaid", "flowchart TD")])
def test_graph_text_formats(tmp_path: Path, fmt: str, needle: str) -> None:
    path = write(tmp_path, "g.pipe", GOOD)
    result = runner.invoke(app, ["graph", str(path), "--format", fmt])
    assert result.exit_code == 0, result.output
    assert needle in result.stdout
    assert "critique_1" in result.stdout or "critique" in result.stdout


def test_graph_json_template_and_assignment(tmp_path: Path) -> None:
    path = write(tmp_path, "g.pipe", GOOD)
    template = json.loads(runner.invoke(app, ["graph", str(path), "--format", "json"]).stdout)
    ids = {n["id"] for n in template["nodes"]}
    assert {"gen", "critique_1", "rank_1", "query"} <= ids
    params = write(tmp_path, "best.json", json.dumps({"critique_1.enabled": False}))
    chosen = runner.invoke(app, ["graph", str(path), "--format", "json", "--params", str(params)])
    data = json.loads(chosen.stdout)
    assert "critique_1" not in {n["id"] for n in data["nodes"]}
    assert {"source": "gen", "target": "rank_1"} in data["edges"]


def test_graph_params_with_unknown_name_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path, "g.pipe", GOOD)
    params = write(tmp_path, "best.json", json.dumps({"gen.sample": 2}))
    result = runner.invoke(app, ["graph", str(path), "--params", str(params)])
    assert result.exit_code == 2
    assert "gen.samples" in result.stderr  # the did-you-mean suggestion


def test_graph_picture_needs_graphviz(tmp_path: Path) -> None:
    path = write(tmp_path, "g.pipe", GOOD)
    out = tmp_path / "g.png"
    result = runner.invoke(app, ["graph", str(path), "-o", str(out)])
    if shutil.which("dot") is None:
        assert result.exit_code == 2
        assert "graphviz" in result.stderr
    else:
        assert result.exit_code == 0
        assert out.read_bytes().startswith(b"\x89PNG")


def test_kinds_json_lists_every_registered_kind() -> None:
    result = runner.invoke(app, ["kinds", "--format", "json"])
    assert result.exit_code == 0
    kinds = {k["kind"]: k for k in json.loads(result.stdout)}
    assert set(kinds) == set(default_registry().kinds())
    rank_params = {p["name"]: p for p in kinds["rank"]["params"]}
    assert rank_params["top_k"]["default"] == "3"
    assert rank_params["model"]["default"] == "(required)"
    assert kinds["unit_test_evaluate"]["consumes"] == "Candidates, Tests"


def test_kinds_unknown_kind_suggests(tmp_path: Path) -> None:
    result = runner.invoke(app, ["kinds", "rnak"])
    assert result.exit_code == 2
    assert "rank" in result.stderr


def test_kinds_prompts_prints_the_default_templates() -> None:
    result = runner.invoke(app, ["kinds", "verify", "--prompts"])
    assert result.exit_code == 0
    for template in default_registry().get("verify").prompts.values():
        assert template.splitlines()[0] in result.stdout
    listed = json.loads(runner.invoke(app, ["kinds", "rank", "--format", "json"]).stdout)
    assert set(listed[0]["prompts"]) == set(default_registry().get("rank").prompts)
