"""archon search / search-report on the simulator: files written, resume, report, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archon.cli import app
from archon.compiler import check_file
from archon.layers import default_registry

runner = CliRunner()

TEMPLATE = """
models { a = "local/qwen2.5-coder-0.5b" }
pipeline t {
  budget { calls <= 12 }
  generate(models = [a], samples = int(1, 5), temperature = float(0.0, 1.0))
  optional critique(model = a)
  repeat int(0, 2) { fuse(models = [a], temperature = float(0.0, 0.6, step = 0.2)) }
}
"""


@pytest.fixture
def template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ARCHON_HOME", str(tmp_path / "home"))
    path = tmp_path / "t.pipe"
    path.write_text(TEMPLATE)
    return path


def search(*args: str) -> tuple[int, str]:
    result = runner.invoke(
        app,
        ["search", *args, "--dataset", "bigbench/arithmetic", "--simulate", "1", "--limit", "9"],
    )
    return result.exit_code, result.output


def test_search_writes_best_pipe_params_plots_and_resumes(template: Path) -> None:
    code, out = search(str(template), "--trials", "12")
    assert code == 0, out
    best = template.with_name("t.best.pipe")
    params = template.with_name("t.best.json")
    assert best.exists() and params.exists()
    assert (template.parent / "t.study.db").exists()
    assert (template.parent / "t-history.png").stat().st_size > 0
    assert (template.parent / "t-front.png").stat().st_size > 0
    assert "trial 0 started" in out and "best so far" in out  # not a terminal: plain lines
    assert "baseline (trial 0)" in out and "best     (trial" in out
    assert "best - baseline on test:" in out and "95% CI [" in out
    compiled = check_file(best, default_registry())
    assert compiled.pipeline is not None and not compiled.errors
    data = json.loads(params.read_text())
    assert data["dev_score"] is not None and data["test_score"] is not None
    # the params file replays on the template
    run = runner.invoke(app, ["run", str(template), "--params", str(params), "--dry-run"])
    assert run.exit_code == 0, run.output
    # the same command again resumes: nothing left to do
    code, again = search(str(template), "--trials", "12")
    assert code == 0 and "0 new trial(s)" in again
    code, more = search(str(template), "--trials", "14")
    assert code == 0 and "2 new trial(s)" in more


def test_report_from_storage(template: Path) -> None:
    code, out = search(str(template), "--trials", "6", "--no-plots")
    assert code == 0, out
    storage = f"sqlite:///{template.parent / 't.study.db'}"
    report = runner.invoke(app, ["search", "--report", "t", "--storage", storage])
    assert report.exit_code == 0, report.output
    assert "study 't'" in report.output and "baseline" in report.output
    as_json = runner.invoke(app, ["search-report", "--storage", storage, "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["study"] == "t" and data["best"] and data["baseline"]["number"] == 0


def test_trial_items_promote_the_best_to_the_whole_dev_split(template: Path) -> None:
    code, out = search(str(template), "--trials", "5", "--no-plots", "--trial-items", "3")
    assert code == 0, out
    assert "(whole dev split" in out and "on 9)" in out


def test_pareto_search(template: Path) -> None:
    code, out = search(str(template), "--trials", "10", "--objective", "pareto")
    assert code == 0, out
    assert "Pareto front" in out
    assert (template.parent / "t-pareto.png").exists()
    assert (template.parent / "t-front.png").exists()


def test_grid_over_a_continuous_range_is_refused(template: Path) -> None:
    code, out = search(str(template), "--trials", "5", "--sampler", "grid")
    assert code == 3
    assert "continuous range" in out and "step" in out


def test_changed_template_is_refused(template: Path) -> None:
    assert search(str(template), "--trials", "3", "--no-plots")[0] == 0
    template.write_text(TEMPLATE.replace("generate(", "g = generate("))
    code, out = search(str(template), "--trials", "5", "--no-plots")
    assert code == 3 and "--allow-template-change" in out
    code, out = search(str(template), "--trials", "5", "--no-plots", "--allow-template-change")
    assert code == 0, out


def test_usage_errors(template: Path) -> None:
    assert runner.invoke(app, ["search"]).exit_code == 2
    result = runner.invoke(app, ["search", str(template), "--dataset", "nope/nothing"])
    assert result.exit_code == 2 and "no dataset" in result.output
