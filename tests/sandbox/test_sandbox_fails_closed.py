"""Without bubblewrap the sandbox refuses to run model-written code unless the user opts into
the weaker fallback (``ARCHON_SANDBOX=fallback``); the fallback, when it runs, says so."""

from __future__ import annotations

import asyncio
import logging

import pytest

from archon.cli.doctor import _print, sandbox_line
from archon.errors import ArchonError
from archon.eval.evaluate import _stop_if_no_sandbox
from archon.sandbox import Sandbox, SandboxUnavailable, confine, isolation, run_calls

NO_BUBBLEWRAP = pytest.mark.skipif(
    not confine.bubblewrap(), reason="bubblewrap is not installed (CI installs it)"
)


@pytest.fixture
def no_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine as one without a working bubblewrap, and without the opt-in."""
    monkeypatch.setattr(confine, "_bwrap_features", lambda: None)
    monkeypatch.delenv(confine.FALLBACK_ENV, raising=False)


@pytest.mark.usefixtures("no_bwrap")
def test_without_bubblewrap_running_code_raises_a_clear_error() -> None:
    assert confine.mode() == "unavailable"
    with pytest.raises(SandboxUnavailable) as raised:
        asyncio.run(run_calls("x = 1", ["x"]))
    message = str(raised.value)
    assert isinstance(raised.value, ArchonError) and "\n" not in message
    assert "apt-get install bubblewrap" in message and "scripts/install.sh" in message
    assert "ARCHON_SANDBOX=fallback" in message
    with pytest.raises(SandboxUnavailable):
        isolation()


@pytest.mark.usefixtures("no_bwrap")
def test_the_fallback_is_refused_without_the_opt_in() -> None:
    with pytest.raises(SandboxUnavailable, match="ARCHON_SANDBOX=fallback"):
        asyncio.run(run_calls("x = 1", ["x"], sandbox=Sandbox(isolation="audit-hook")))


@pytest.mark.usefixtures("no_bwrap")
def test_with_the_opt_in_the_fallback_runs_and_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(confine.FALLBACK_ENV, "fallback")
    confine.warn_weak.cache_clear()
    with caplog.at_level(logging.WARNING, logger="archon.sandbox"):
        report = asyncio.run(run_calls("x = 41", ["x + 1"]))
    assert report.isolation == "audit-hook" and report.outcomes[0].value == "42"
    assert any("SANDBOX FALLBACK" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("bwrap", "opt_in", "shown"),
    [
        (True, False, "code sandbox:  bubblewrap (namespace)"),
        (False, True, "code sandbox:  fallback (weaker: "),
        (False, False, "code sandbox:  unavailable (install bubblewrap"),
    ],
)
def test_doctor_shows_the_sandbox_mode(
    monkeypatch: pytest.MonkeyPatch, bwrap: bool, opt_in: bool, shown: str
) -> None:
    features = ("/usr/bin/bwrap", True) if bwrap else None
    monkeypatch.setattr(confine, "_bwrap_features", lambda: features)
    if opt_in:
        monkeypatch.setenv(confine.FALLBACK_ENV, "fallback")
    else:
        monkeypatch.delenv(confine.FALLBACK_ENV, raising=False)
    assert sandbox_line().startswith(shown)


def test_doctor_prints_the_sandbox_line(capsys: pytest.CaptureFixture[str]) -> None:
    report = {
        "cpu": "x",
        "threads": 2,
        "cpu_features": [],
        "engine": "not installed",
        "engine_libraries": [],
        "guard": {"ok": False, "detail": "llama-cpp-python is not installed"},
    }
    _print(report)
    assert "code sandbox:" in capsys.readouterr().out


def test_an_evaluation_stops_when_there_is_no_sandbox() -> None:
    refusal = SandboxUnavailable()
    wrapped = ArchonError("node failed")
    wrapped.cause = refusal  # type: ignore[attr-defined]  # as NodeFailed carries it
    with pytest.raises(SandboxUnavailable):
        _stop_if_no_sandbox(wrapped)
    _stop_if_no_sandbox(ArchonError("another problem"))  # other errors: recorded per item


@NO_BUBBLEWRAP
def test_with_bubblewrap_no_opt_in_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(confine.FALLBACK_ENV, raising=False)
    assert isolation() == "namespace" and confine.mode() == "namespace"
