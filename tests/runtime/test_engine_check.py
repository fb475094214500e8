"""The engine guard: a child that dies by SIGILL becomes a clear error, never a dead process."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from archon.runtime.clients.base import ModelCallError
from archon.runtime.clients.local.engine_check import (
    EngineGuard,
    cpu_flags,
    interpret,
    run_check,
)

SIGILL_CHILD = [
    sys.executable,
    "-c",
    "import os, signal; print('SYSTEM_INFO CPU : AVX512 = 1 | AMX_INT8 = 1', flush=True);"
    " os.kill(os.getpid(), signal.SIGILL)",
]
OK_CHILD = [sys.executable, "-c", "print('SYSTEM_INFO CPU : AVX2 = 1'); print('DECODED 8 0.5')"]
FAILING_CHILD = [sys.executable, "-c", "import sys; sys.exit('ValueError: bad model file')"]


def test_a_child_killed_by_sigill_is_reported_with_signal_features_and_fix() -> None:
    result = run_check(Path("unused.gguf"), argv=SIGILL_CHILD)
    assert not result.ok
    assert result.signal_name == "SIGILL"
    assert "illegal instruction" in result.detail
    assert "AMX_INT8 = 1" in result.detail  # what the engine was built with
    assert "CPU advertises" in result.detail
    assert "scripts/install.sh" in result.detail and "GGML_NATIVE=OFF" in result.detail


def test_require_raises_a_model_call_error_for_sigill(tmp_path: Path) -> None:
    guard = EngineGuard(tmp_path)
    with pytest.raises(ModelCallError, match="SIGILL") as caught:
        guard.require(Path("unused.gguf"), argv=SIGILL_CHILD)
    assert caught.value.retryable is False


def test_the_verdict_is_cached_per_build_and_cpu(tmp_path: Path) -> None:
    guard = EngineGuard(tmp_path)
    assert guard.check(Path("m.gguf"), argv=OK_CHILD).ok
    stored = json.loads((tmp_path / "engine-check.json").read_text())
    assert list(stored) == [guard.key()] and stored[guard.key()]["ok"] is True
    # A new guard (a new process) trusts the stored verdict: the dying child never runs.
    again = EngineGuard(tmp_path).check(Path("m.gguf"), argv=SIGILL_CHILD)
    assert again.ok


def test_a_stored_sigill_keeps_failing_until_the_build_changes(tmp_path: Path) -> None:
    with pytest.raises(ModelCallError):
        EngineGuard(tmp_path).require(Path("m.gguf"), argv=SIGILL_CHILD)
    with pytest.raises(ModelCallError, match="SIGILL"):
        EngineGuard(tmp_path).require(Path("m.gguf"), argv=OK_CHILD)


def test_a_failure_that_is_not_a_signal_is_left_to_the_real_load(tmp_path: Path) -> None:
    guard = EngineGuard(tmp_path)
    guard.require(Path("m.gguf"), argv=FAILING_CHILD)  # logged, not raised
    assert guard.check(Path("m.gguf"), argv=FAILING_CHILD).detail.endswith("bad model file")
    assert not (tmp_path / "engine-check.json").exists()  # says nothing about the CPU


def test_a_damaged_cache_file_is_only_a_lost_cache(tmp_path: Path) -> None:
    (tmp_path / "engine-check.json").write_bytes(b"\xff\x00 not json")
    assert EngineGuard(tmp_path).check(Path("m.gguf"), argv=OK_CHILD).ok
    assert json.loads((tmp_path / "engine-check.json").read_text())


def test_disabled_guard_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHON_ENGINE_CHECK", "0")
    guard = EngineGuard.from_environment(tmp_path)
    guard.require(Path("m.gguf"), argv=SIGILL_CHILD)
    assert not (tmp_path / "engine-check.json").exists()


def test_interpret_reads_speed_and_build_flags() -> None:
    result = interpret(0, "SYSTEM_INFO CPU : AVX2 = 1\nDECODED 8 0.25\n", "", frozenset({"avx2"}))
    assert result.ok and result.tokens_per_s == pytest.approx(32.0)
    assert "AVX2 = 1" in result.system_info


def test_cpu_flags_parses_a_cpuinfo_file(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_tile\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == frozenset({"fpu", "avx2", "amx_tile"})
    assert cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.integration
def test_the_installed_engine_decodes_in_a_child(tmp_path: Path) -> None:
    """Installs nothing: runs the engine that is installed, on the tiny SmolLM2 model."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed")
    from archon.runtime.clients.local.models import pull

    gguf = pull("smollm2-135m", tmp_path, hub_timeout_s=3.0)
    result = run_check(gguf)
    assert result.ok, result.detail
    assert "AVX" in result.system_info or "NEON" in result.system_info
    assert result.tokens_per_s is not None and result.tokens_per_s > 0


def test_doctor_names_a_missing_model_and_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from archon.cli import app

    monkeypatch.setenv("ARCHON_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["models", "doctor", "smollm2-135m", "--json"])
    if importlib.util.find_spec("llama_cpp") is None:
        assert "not installed" in result.output
    else:
        assert "archon models pull smollm2-135m" in result.output
    assert result.exit_code == 3
    assert CliRunner().invoke(app, ["models", "doctor", "no-such-model"]).exit_code == 2


@pytest.mark.integration
def test_doctor_reports_features_build_guard_and_speed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed")
    from typer.testing import CliRunner

    from archon.cli import app
    from archon.runtime.clients.local.models import pull

    pull("smollm2-135m", tmp_path, hub_timeout_s=3.0)
    monkeypatch.setenv("ARCHON_HOME", str(tmp_path))
    result = CliRunner().invoke(
        app, ["models", "doctor", "smollm2-135m", "--tokens", "8", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["guard"]["ok"] is True
    assert report["engine_build"].startswith("CPU")
    assert report["tokens_per_s"] > 0
    assert (tmp_path / "engine-check.json").is_file()  # the verdict is remembered
