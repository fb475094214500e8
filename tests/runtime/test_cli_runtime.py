"""``archon run --dry-run``, ``models`` and ``cache`` through the CLI (offline)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from archon.cli import app

PIPE = """\
models {
  small = "local/smollm2-135m"
}

pipeline one {
  generate(models = [small], samples = int(1, 3), max_tokens = 24)
}
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ARCHON_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_dry_run_prints_plan_and_defaults(tmp_path: Path, home: Path) -> None:
    pipe = tmp_path / "one.pipe"
    pipe.write_text(PIPE)
    result = CliRunner().invoke(app, ["run", str(pipe), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "generate_1: generate(" in result.stdout
    assert "calls" in result.stdout
    assert "generate_1.samples" in result.stderr


def test_run_needs_a_query(tmp_path: Path, home: Path) -> None:
    pipe = tmp_path / "one.pipe"
    pipe.write_text(PIPE)
    result = CliRunner().invoke(app, ["run", str(pipe)])
    assert result.exit_code == 2


def test_bad_file_is_a_diagnostic(tmp_path: Path, home: Path) -> None:
    pipe = tmp_path / "bad.pipe"
    pipe.write_text('pipeline x { generate(models = ["m"], samplez = 2) }\n')
    result = CliRunner().invoke(app, ["run", str(pipe), "-q", "hi"])
    assert result.exit_code == 1


def test_models_list_and_path(home: Path) -> None:
    listed = CliRunner().invoke(app, ["models", "list", "--json"])
    assert listed.exit_code == 0 and "qwen2.5-coder-0.5b" in listed.stdout
    path = CliRunner().invoke(app, ["models", "path", "smollm2-135m"])
    assert path.exit_code == 3 and str(home) in path.stdout
    unknown = CliRunner().invoke(app, ["models", "path", "nope"])
    assert unknown.exit_code == 2


def test_cache_stats_and_clear(home: Path) -> None:
    stats = CliRunner().invoke(app, ["cache", "stats", "--json"])
    assert stats.exit_code == 0 and '"entries": 0' in stats.stdout
    cleared = CliRunner().invoke(app, ["cache", "clear"])
    assert cleared.exit_code == 0 and "removed 0" in cleared.stdout
