"""What `archon search` prints: progress lines, parameters in full, the winner's shrinkage."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from archon.cli import app
from archon.cli.search_cmds import _Lines, _params_text, trials_table
from archon.search import SearchEvent, load_report
from archon.search.report import estimate, wilson_interval

runner = CliRunner()

LONG = '["local/qwen2.5-coder-1.5b", "local/qwen2.5-coder-0.5b"]'

# The long list is the first option, so the baseline (the defaults) uses it.
TEMPLATE = """
models { a = "local/qwen2.5-coder-1.5b"  b = "local/qwen2.5-coder-0.5b" }
pipeline t {
  budget { calls <= 12 }
  generate(models = choice([a, b], [a]), samples = int(1, 4), temperature = float(0.0, 1.0))
  optional critique(model = a)
}
"""


@pytest.fixture
def template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ARCHON_HOME", str(tmp_path / "home"))
    path = tmp_path / "t.pipe"
    path.write_text(TEMPLATE)
    return path


def search(template: Path, *args: str) -> Any:
    return runner.invoke(
        app,
        [
            "search",
            str(template),
            "--dataset",
            "bigbench/arithmetic",
            "--simulate",
            "1",
            "--limit",
            "12",
            "--no-plots",
            *args,
        ],
    )


def test_long_parameter_values_are_printed_unabridged(template: Path) -> None:
    result = search(template, "--trials", "6")
    assert result.exit_code == 0, result.output
    assert f"generate_1.models={LONG}" in result.output
    assert "…" not in result.output
    assert "params (vs baseline)" in result.output


def _last_cells(text: str) -> str:
    """The last column of a rendered rich table, its lines joined."""
    return "".join(line.split("│")[-2].strip() for line in text.splitlines() if "│" in line)


def test_a_narrow_table_folds_long_values_instead_of_cutting_them(template: Path) -> None:
    assert search(template, "--trials", "4").exit_code == 0
    report = load_report(f"sqlite:///{template.parent / 't.study.db'}", "t")
    out = io.StringIO()
    Console(file=out, width=70).print(trials_table(report, 10))
    assert "…" not in out.getvalue()
    assert f"generate_1.models={LONG}".replace(" ", "") in _last_cells(out.getvalue())


def test_params_are_shown_as_a_difference_from_the_baseline() -> None:
    baseline = {"g.models": ["a", "b"], "g.samples": 1, "r.count": 1, "f.1.t": 0.2}
    trial = {"g.models": ["a", "b"], "g.samples": 3, "r.count": 0}
    assert _params_text(trial, baseline).splitlines() == [
        "g.samples=3",
        "r.count=0",
        "f.1.t unset",
    ]
    assert _params_text(dict(baseline), baseline) == "(same as baseline)"
    assert _params_text(baseline).splitlines()[0] == 'g.models=["a", "b"]'
    assert _params_text({"x": 0.123456789}) == "x=0.123457"


def test_shrinkage_columns_in_text_and_json(template: Path) -> None:
    result = search(template, "--trials", "6", "--trial-items", "4")
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if "95% CI" in line)
    assert "trial dev items" in header and "whole dev split" in header and "test" in header
    best = next(line for line in result.output.splitlines() if line.startswith("best (trial"))
    assert best.count(" [") == 3 and "n=4" in best and "n=12" in best
    assert any(line.startswith("baseline (trial 0)") for line in result.output.splitlines())

    storage = f"sqlite:///{template.parent / 't.study.db'}"
    as_json = runner.invoke(app, ["search-report", "--storage", storage, "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    rows = {row["label"]: row for row in data["shrinkage"]}
    assert set(rows) == {"best", "baseline"} and rows["baseline"]["trial"] == 0
    for row in rows.values():
        for part, items in (("dev", 4), ("whole_dev", 12), ("test", 12)):
            value = row[part]
            assert value["items"] == items, (part, value)
            low, high = value["ci95"]
            assert 0.0 <= low <= value["score"] <= high <= 1.0
    assert rows["best"]["dev"]["method"] == "bootstrap"  # trials keep their per-item scores
    assert rows["best"]["test"]["method"] == "bootstrap"
    assert data["test_difference"] is not None


def test_json_output_stays_json_with_progress_lines(template: Path) -> None:
    result = search(template, "--trials", "3", "--json", "--progress", "lines")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["shrinkage"] and "trial 0 started" in result.stderr


def test_progress_lines_when_output_is_not_a_terminal(template: Path) -> None:
    result = search(template, "--trials", "6", "--trial-items", "4")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "search started: study 't'" in out
    assert "trial 0 started" in out
    assert "trial 0 COMPLETE score " in out and " calls/q" in out and "best so far" in out
    assert "promoting trial " in out and "to the whole dev split" in out
    assert "testing trial 0 on the held-out test split" in out
    assert "search finished (trials)" in out


def test_progress_lines_read_the_trial_attrs_and_survive_their_absence() -> None:
    out = io.StringIO()
    attrs = {
        2: {
            "items": 8,
            "score": 0.25,
            "calls": 1234,
            "cache_hits": 900,
            "bank_hits": 40,
            "wall_s": 41.04,
            "cpu_s": 3.0,
            "pruned_by": "below the paired median",
        },
        3: {
            "items": 10,
            "score": 0.9,
            "calls": 30,
            "cache_hits": 2,
            "per_query": {"calls": {"mean": 3.2}},
        },
    }
    lines = _Lines(Console(file=out, width=80), lambda n: attrs.get(n, {}))
    lines(
        SearchEvent(
            kind="trial_finished",
            trial=3,
            state="COMPLETE",
            value=(0.9,),
            trials_done=1,
            trials_target=5,
            best=0.9,
        )
    )
    lines(SearchEvent(kind="trial_finished", trial=2, state="PRUNED", trials_done=2, best=0.9))
    lines(SearchEvent(kind="trial_finished", trial=4, state="FAIL", trials_done=2))
    lines(SearchEvent(kind="trial_finished", trial=5, state="COMPLETE", value=(0.5, 2.0)))
    lines(SearchEvent(kind="promoting", trial=3, message="whole dev split"))
    lines(SearchEvent(kind="testing", message="baseline single[a]"))
    assert out.getvalue().splitlines() == [
        "trial 3 COMPLETE score 0.900 calls 30 (cache 2) 3.2 calls/q;"
        " best so far 0.900 (trial 3) [1/5 done]",
        "trial 2 PRUNED at 8 items score 0.250 (below the paired median) calls 1,234"
        " (cache 900, bank 40) 266.8 calls/q 41.0 s (cpu 3.0 s); best so far 0.900 (trial 3)"
        " [2 done]",
        "trial 4 FAIL",
        "trial 5 COMPLETE score 0.500 cost 2.00/query",
        "promoting trial 3 to the whole dev split",
        "testing baseline single[a]",
    ]


def test_estimates() -> None:
    low, high = wilson_interval(0.5, 20)
    assert 0.29 < low < 0.31 and 0.69 < high < 0.71
    assert wilson_interval(1.0, 6)[1] == 1.0
    assert estimate(None, None, 0) is None
    boot = estimate({"a": 1.0, "b": 0.0, "c": 1.0, "d": 1.0})
    assert boot is not None and boot.items == 4 and boot.method == "bootstrap"
    assert boot.low <= 0.75 <= boot.high
    same = estimate({"a": 1.0, "b": 1.0})
    assert same is not None and (same.low, same.high) == (1.0, 1.0)


def test_calls_per_query_by_model_count_cache_and_bank_hits() -> None:
    from archon.cli.search_cmds import _per_model
    from archon.search.report import TrialSummary

    trial = TrialSummary(
        number=1,
        state="COMPLETE",
        values=(0.5,),
        params={},
        dev_items=4,
        by_model={"m": {"calls": 2, "cache_hits": 6}},
    )
    assert _per_model(trial) == "calls/query by model (dev): m 2.0"
