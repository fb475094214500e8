"""The code sandbox: results per test, timeouts, memory cap, no network, no writes outside."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import pytest

from archon.sandbox import SandboxReport, isolation, run_tests
from archon.sandbox.confine import SCRATCH


def _run(code: str, tests: list[str], **options: float) -> SandboxReport:
    return asyncio.run(run_tests(code, tests, **options))  # type: ignore[arg-type]


def test_passed_failed_and_error_per_test() -> None:
    report = _run(
        "def add(a, b):\n    return a + b\n",
        ["assert add(1, 2) == 3", "assert add(1, 1) == 3", "undefined()"],
    )
    assert [o.status for o in report.outcomes] == ["passed", "failed", "error"]
    assert "NameError" in report.outcomes[2].message
    assert report.passed == 1 and report.total == 3


def test_syntax_error_fails_every_test() -> None:
    report = _run("def f(:", ["assert True", "assert True"])
    assert report.setup.status == "error"
    assert [o.status for o in report.outcomes] == ["error", "error"]


def test_infinite_loop_is_killed_within_the_timeout() -> None:
    started = time.monotonic()
    report = _run(
        "def spin():\n    while True:\n        pass\n", ["spin()", "assert 1"], timeout_s=1.0
    )
    assert time.monotonic() - started < 4.0
    assert [o.status for o in report.outcomes] == ["timeout", "passed"]


def test_code_ignoring_the_alarm_is_killed_at_the_wall_clock_limit() -> None:
    started = time.monotonic()
    code = "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
    report = _run(code, ["while True: pass"], timeout_s=0.5)
    assert time.monotonic() - started < 5.0
    assert report.outcomes[0].status == "timeout"


def test_memory_is_capped() -> None:
    report = _run("", ["x = bytearray(1024 * 1024 * 1024)"], memory_mb=128)
    assert report.outcomes[0].status == "error"
    assert "MemoryError" in report.outcomes[0].message


def test_network_is_blocked() -> None:
    tests = [
        "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)",
        "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=1)",
    ]
    report = _run("", tests)
    assert [o.status for o in report.outcomes] == ["error", "error"]
    assert isolation() in ("namespace", "audit-hook") and report.isolation == isolation()


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="CI installs bubblewrap")
def test_ci_tests_the_namespace_sandbox() -> None:
    assert isolation() == "namespace"


def test_cannot_write_outside_its_temporary_directory(tmp_path: Path) -> None:
    target = tmp_path / f"escape-{uuid.uuid4().hex}.txt"
    report = _run(
        "",
        [
            f"open({str(target)!r}, 'w').write('x')",
            f"import os\nos.open({str(target)!r}, os.O_CREAT | os.O_WRONLY)",
            "open('inside.txt', 'w').write('ok')\nassert open('inside.txt').read() == 'ok'",
            "import os\nassert os.environ.get('HOME') == os.getcwd()",
            "import subprocess\nsubprocess.run(['touch', '/tmp/archon-escape'], check=True)",
        ],
    )
    assert [o.status for o in report.outcomes] == ["error", "error", "passed", "passed", "error"]
    assert not target.exists()
    assert not os.path.exists("/tmp/archon-escape")


def test_temporary_directory_is_home_and_is_removed() -> None:
    report = _run("import os", ["assert os.environ['HOME'] == os.getcwd() and False, os.getcwd()"])
    where = report.outcomes[0].message.removeprefix("AssertionError: ")
    assert report.outcomes[0].status == "failed"
    # The namespace mode's folder is a tmpfs only the sandbox sees; the fallback's is removed.
    assert where == SCRATCH if isolation() == "namespace" else "archon-sandbox-" in where
    assert not os.path.exists(where)


def test_cancellation_kills_the_child() -> None:
    async def cancel_soon() -> None:
        task = asyncio.ensure_future(run_tests("while True: pass", ["assert 1"], timeout_s=30))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    started = time.monotonic()
    asyncio.run(cancel_soon())
    assert time.monotonic() - started < 5.0
