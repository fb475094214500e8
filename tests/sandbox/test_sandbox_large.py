"""Large globals and large results: clear outcomes, never a wrong verdict."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from archon.sandbox import run_calls, run_tests

MANY_GLOBALS = (
    "\n".join(f"TABLE_{k} = 'x' * 60_000" for k in range(25))
    + """

def lookup(k):
    return len(globals()[f"TABLE_{k}"])
"""
)

HUGE_RESULT = """
def big():
    return "y" * 3_000_000

def small():
    return 1
"""


def test_a_program_with_megabytes_of_globals_keeps_its_names() -> None:
    report = asyncio.run(
        run_tests(MANY_GLOBALS, ["assert lookup(3) == 60_000", "assert len(TABLE_24) == 60_000"],
                  timeout_s=10, memory_mb=512)
    )  # fmt: skip
    assert [o.status for o in report.outcomes] == ["passed", "passed"], report.outcomes


def test_a_result_over_the_cap_is_a_harness_error_not_a_failure() -> None:
    report = asyncio.run(
        run_tests(HUGE_RESULT, ["assert big() == 'y' * 3_000_000", "assert small() == 1"],
                  timeout_s=10, memory_mb=512)
    )  # fmt: skip
    first, second = report.outcomes
    assert first.status == "error" and first.harness_error
    assert "result too large" in first.message
    assert second.status == "passed"


def test_run_calls_reports_a_large_result_as_an_error() -> None:
    report = asyncio.run(run_calls(HUGE_RESULT, ["big()", "small()"], timeout_s=10, memory_mb=512))
    assert report.outcomes[0].status == "error"
    assert report.outcomes[0].error == "ResultTooLarge"
    assert report.outcomes[1].status == "ok" and report.outcomes[1].value == "1"


def test_folders_of_dead_archon_processes_are_swept(tmp_path: Path) -> None:
    from archon.sandbox.confine import SANDBOX_PREFIX, sweep_stale

    dead = _dead_pid()
    stale = tmp_path / f"{SANDBOX_PREFIX}{dead}-abc"
    (stale / "work").mkdir(parents=True)
    mine = tmp_path / f"{SANDBOX_PREFIX}{os.getpid()}-def"
    mine.mkdir()
    unrelated = tmp_path / "archon-sandbox-notapid"
    unrelated.mkdir()
    assert sweep_stale(str(tmp_path)) == [str(stale)]
    assert not stale.exists() and mine.exists() and unrelated.exists()


def _dead_pid() -> int:
    import subprocess

    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid
