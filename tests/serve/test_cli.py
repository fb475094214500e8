"""``archon serve`` arguments: names, --params, keys, options, exit codes."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from archon.cli import app, serve_cmds
from archon.serve.app import STATE

runner = CliRunner()

TEMPLATE = """
models { m = "openai/m" }
pipeline tuned {
  generate(models = [m], samples = int(1, 3), temperature = float(0.0, 1.0, default = 0.5))
  vote()
}
"""
DIRECT = 'models { m = "openai/m" }\npipeline direct { generate(models = [m]) }\n'


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"tuned": tmp_path / "tuned.pipe", "direct": tmp_path / "direct.pipe"}
    paths["tuned"].write_text(TEMPLATE)
    paths["direct"].write_text(DIRECT)
    paths["best"] = tmp_path / "best.json"
    paths["best"].write_text(json.dumps({"generate_1.samples": 3}))
    return paths


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """Run the command up to serving; record the app and the address instead of listening."""
    seen: dict[str, Any] = {}

    async def fake_serve(application: Any, host: str, port: int, **options: Any) -> None:
        seen.update(app=application, host=host, port=port, options=options)

    monkeypatch.setattr(serve_cmds, "serve", fake_serve)
    monkeypatch.setenv("ARCHON_HOME", str(tmp_path / "home"))
    return seen


def test_names_params_and_settings_reach_the_app(
    files: dict[str, Path], captured: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_SERVE_KEY", "s3cret-key-value")
    result = runner.invoke(
        app,
        [
            "serve",
            f"best={files['tuned']}",
            str(files["direct"]),
            "--params",
            f"best={files['best']}",
            "--port",
            "0",
            "--api-key-env",
            "MY_SERVE_KEY",
            "--max-concurrency",
            "3",
            "--queue",
            "5",
            "--max-calls",
            "40",
            "--no-cache",
        ],
    )
    assert result.exit_code == 0, result.output
    state = captured["app"][STATE]
    pipelines = state.engine.pipelines
    assert list(pipelines) == ["best", "direct"]
    best = pipelines["best"].pipeline
    samples = [p.value for n in best.nodes for p in n.params if p.name == "samples"]
    assert samples == [3]
    assert not pipelines["best"].direct and pipelines["direct"].direct
    assert state.settings.api_key == "s3cret-key-value"
    assert (state.admission.max_running, state.admission.max_waiting) == (3, 5)
    assert state.engine.budget.budget.calls == 40
    assert (captured["host"], captured["port"]) == ("127.0.0.1", 0)
    assert "temperature" in result.output  # the hole left at its default is noted


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--api-key-env", "ARCHON_TEST_UNSET_VAR"], "not set"),
        (["--params", "nope=x.json"], "no pipeline is served as 'nope'"),
        (["--max-concurrency", "0"], "--max-concurrency"),
        (["--budget-window", "0"], "positive"),
    ],
)
def test_usage_errors_exit_2(
    files: dict[str, Path], captured: dict[str, Any], extra: list[str], message: str
) -> None:
    result = runner.invoke(app, ["serve", str(files["direct"]), *extra])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "app" not in captured


def test_two_pipelines_under_one_name_exit_2(
    files: dict[str, Path], captured: dict[str, Any]
) -> None:
    result = runner.invoke(app, ["serve", str(files["direct"]), str(files["direct"])])
    assert result.exit_code == 2 and "NAME=FILE" in result.output
    result = runner.invoke(app, ["serve", str(files["direct"].parent / "missing.pipe")])
    assert result.exit_code == 2 and "no such file" in result.output


def test_public_bind_without_a_key_warns(files: dict[str, Path], captured: dict[str, Any]) -> None:
    result = runner.invoke(app, ["serve", str(files["direct"]), "--host", "0.0.0.0"])
    assert result.exit_code == 0
    assert "without --api-key-env" in result.output
    quiet = runner.invoke(app, ["serve", str(files["direct"])])
    assert "without --api-key-env" not in quiet.output


def test_a_port_in_use_exits_3(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHON_HOME", str(tmp_path / "home"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", str(files["direct"]), "--port", str(port)])
    assert result.exit_code == 3, result.output
    assert "cannot listen" in result.output
