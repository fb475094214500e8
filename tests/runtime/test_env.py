"""RunEnv: the library builds the environment the CLI builds, and the CLI builds it there."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archon.cli import app
from archon.compiler import compile_source
from archon.ir import Budget
from archon.runtime import (
    BudgetExceeded,
    Connection,
    EnvError,
    Meter,
    Reservation,
    RunEnv,
    env,
    run_sync,
)
from archon.runtime.clients.fake import ScriptedClient
from archon.runtime.clients.router import RouterClient
from archon.values import Usage

PIPE = 'models { m = "openai/gpt-4o-mini" }\npipeline one { generate(models = [m]) }\n'


def test_open_builds_the_routing_client_and_runs_a_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHON_HOME", str(tmp_path / "home"))
    pipeline = compile_source(PIPE)
    built = RunEnv.open([pipeline], connection=Connection(timeout_s=30.0, retries=1), seed=3)
    try:
        assert isinstance(built.client, RouterClient)
        assert built.limits.timeout_s == 30.0 and built.limits.retries == 1
        assert built.cache is not None and built.seed == 3
        # the same environment with an offline client answers through the runtime
        result = run_sync(pipeline, "2+2?", built.replace(client=ScriptedClient([(None, "4")])))
        assert result.answer == "4"
    finally:
        built.close_sync()


def test_open_rejects_a_bad_connection() -> None:
    with pytest.raises(EnvError):
        Connection(timeout_s=0.0)


def test_the_cli_builds_its_client_with_the_library_constructor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHON_HOME", str(tmp_path / "home"))
    seen: list[object] = []

    def fake(pipelines: object, **kwargs: object) -> ScriptedClient:
        seen.append(kwargs.get("connection"))
        return ScriptedClient([(None, "from the library")])

    monkeypatch.setattr(env, "open_client", fake)
    pipe = tmp_path / "one.pipe"
    pipe.write_text(PIPE)
    result = CliRunner().invoke(app, ["run", str(pipe), "-q", "hi", "--no-cache", "--timeout", "5"])
    assert result.exit_code == 0, result.output
    assert "from the library" in result.output
    assert len(seen) == 1 and isinstance(seen[0], Connection) and seen[0].timeout_s == 5.0


def test_run_takes_env_or_its_fields_not_both() -> None:
    pipeline = compile_source(PIPE)
    client = ScriptedClient([(None, "4")])
    assert run_sync(pipeline, "q", client=client).answer == "4"
    with pytest.raises(TypeError):
        run_sync(pipeline, "q", RunEnv(client=client), seed=1)


def test_the_meter_and_the_search_agree_at_the_exact_threshold() -> None:
    async def go() -> None:
        meter = Meter(Budget(calls=3), scope="run")
        for _ in range(2):
            meter.settle(await meter.reserve(Reservation(1, 0, 0.0)), Usage(calls=1))
        assert meter.exhausted() is None  # one call still fits, and reserve agrees
        held = await meter.reserve(Reservation(1, 0, 0.0))
        meter.settle(held, Usage(calls=1))
        assert meter.exhausted() == "calls"  # reached exactly: nothing more fits
        with pytest.raises(BudgetExceeded):
            await meter.reserve(Reservation(1, 0, 0.0))

    asyncio.run(go())
