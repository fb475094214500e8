"""Escape probes aimed at the audit-hook fallback: ``/proc/<pid>``, directory listings, file
descriptors, FIFOs and pidfds. Each runs with and without ``unshare`` and checks the host."""

from __future__ import annotations

import ast
import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from archon.sandbox import CallOutcome, Sandbox, confine, run_calls


@pytest.fixture(params=["audit-hook", "audit-hook-bare"])
def sandbox(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The fallback, with ``unshare`` and (``audit-hook-bare``) with the audit hook alone."""
    monkeypatch.setenv(confine.FALLBACK_ENV, "fallback")
    if request.param == "audit-hook-bare":
        monkeypatch.setattr(confine, "_unshare", lambda: None)
    return Sandbox(isolation="audit-hook")


def call(code: str, expr: str, sandbox: Sandbox) -> CallOutcome:
    report = asyncio.run(run_calls(code, [expr], sandbox=sandbox))
    return report.outcomes[0]


def returned(outcome: CallOutcome) -> Any:
    """The value the probe returned (it returns plain literals only)."""
    assert outcome.status == "ok" and outcome.value is not None, outcome
    return ast.literal_eval(outcome.value)


TRY = """
def attempt(action):
    try:
        value = action()
    except Exception as error:
        return type(error).__name__
    return repr(value)[:200]
"""


def test_proc_of_a_process_is_out_of_reach(sandbox: Sandbox, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2-archon")
    probe = TRY + (
        "import os\n"
        "def read(path):\n"
        "    with open(path, 'rb') as f:\n"
        "        return f.read(4096)\n"
        "def raw(path):\n"
        "    fd = os.open(path, os.O_RDONLY)\n"
        "    return os.read(fd, 4096)\n"
        "def probe(secret):\n"
        "    pid = str(os.getpid())\n"
        "    paths = ['/proc/' + pid + '/root' + secret, '/proc/self/root' + secret,\n"
        "             '/proc/thread-self/root' + secret, '/proc/' + pid + '/environ',\n"
        "             '/proc/' + pid + '/mem', '/proc/self/environ', '/proc/1/environ']\n"
        "    return [attempt(lambda: f(p)) for p in paths for f in (read, raw)]\n"
    )
    outcome = call(probe, f"probe({str(secret)!r})", sandbox)
    assert "hunter2" not in str(outcome.value)
    assert set(returned(outcome)) == {"PermissionError"}


def test_directories_outside_cannot_be_listed(sandbox: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "host-secret-name.txt").write_text("x")
    probe = TRY + (
        "import os\n"
        "def probe(folder):\n"
        "    open('mine.txt', 'w').close()\n"
        "    import fractions  # an import the runner has not made lists the stdlib\n"
        "    return {\n"
        "        'own': attempt(lambda: os.listdir('.')),\n"
        "        'stdlib': attempt(lambda: 'os.py' in os.listdir(os.path.dirname(os.__file__))),\n"
        "        'listdir': attempt(lambda: os.listdir(folder)),\n"
        "        'scandir': attempt(lambda: [e.name for e in os.scandir(folder)]),\n"
        "        'root': attempt(lambda: os.listdir('/')),\n"
        "        'proc': attempt(lambda: os.listdir('/proc')),\n"
        "        'walk': attempt(lambda: list(os.walk(folder))),\n"
        "    }\n"
    )
    outcome = call(probe, f"probe({str(tmp_path)!r})", sandbox)
    seen = returned(outcome)
    assert "mine.txt" in seen["own"] and seen["stdlib"] == "True"
    assert "host-secret-name" not in repr(seen)
    for key in ("listdir", "scandir", "root", "proc"):
        assert seen[key] == "PermissionError", key
    assert seen["walk"] == "[]"  # os.walk swallows the refusal


def test_metadata_changes_through_descriptors_stay_inside(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefixes = confine._prefixes
    monkeypatch.setattr(confine, "_prefixes", lambda: [*prefixes(), str(tmp_path)])
    target = tmp_path / "readable.txt"
    target.write_text("visible")
    target.chmod(0o644)
    os.utime(target, (1_000_000, 1_000_000))
    probe = TRY + (
        "import os\n"
        "def probe(target):\n"
        "    fd = os.open(target, os.O_RDONLY)\n"
        "    own = os.open('own.txt', os.O_CREAT | os.O_WRONLY, 0o600)\n"
        "    return [attempt(lambda: os.read(fd, 7)),\n"
        "            attempt(lambda: os.fchmod(own, 0o644)),\n"
        "            attempt(lambda: os.utime(own, (5, 5))),\n"
        "            attempt(lambda: os.fchmod(fd, 0o777)),\n"
        "            attempt(lambda: os.chmod(fd, 0o777)),\n"
        "            attempt(lambda: os.fchown(fd, os.getuid(), os.getgid())),\n"
        "            attempt(lambda: os.chown(fd, os.getuid(), os.getgid())),\n"
        "            attempt(lambda: os.utime(fd, (5, 5))),\n"
        "            attempt(lambda: os.truncate(fd, 0))]\n"
    )
    outcome = call(probe, f"probe({str(target)!r})", sandbox)
    seen = returned(outcome)
    assert seen[:3] == ["b'visible'", "None", "None"]  # its own file: allowed
    assert seen[3:] == ["PermissionError"] * 6
    assert target.stat().st_mode & 0o777 == 0o644
    assert target.stat().st_mtime == 1_000_000 and target.read_text() == "visible"


def test_no_fifo_or_device_node_is_made(sandbox: Sandbox, tmp_path: Path) -> None:
    probe = TRY + (
        "import os, posix, stat\n"
        "def probe(folder):\n"
        "    return [attempt(lambda: os.mkfifo('pipe')),\n"
        "            attempt(lambda: os.mknod('node', stat.S_IFIFO | 0o600)),\n"
        "            attempt(lambda: posix.mkfifo(folder + '/pipe')),\n"
        "            attempt(lambda: os.mknod(folder + '/node', stat.S_IFIFO | 0o600)),\n"
        "            os.path.exists('pipe') or os.path.exists('node')]\n"
    )
    outcome = call(probe, f"probe({str(tmp_path)!r})", sandbox)
    assert returned(outcome) == ["PermissionError"] * 4 + [False]
    assert not (tmp_path / "pipe").exists() and not (tmp_path / "node").exists()


def test_no_process_is_signalled_through_a_pidfd(sandbox: Sandbox) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        probe = TRY + (
            "import os, posix, signal, _signal, sys\n"
            "def fresh():\n"
            "    sys.modules.pop('_signal')\n"
            "    import _signal\n"
            "def probe(pid):\n"
            "    return [attempt(lambda: os.pidfd_open(pid)),\n"
            "            attempt(lambda: posix.pidfd_open(pid)),\n"
            "            attempt(lambda: signal.pidfd_send_signal(3, signal.SIGKILL)),\n"
            "            attempt(lambda: _signal.pidfd_send_signal(3, signal.SIGKILL)),\n"
            "            attempt(lambda: signal.pidfd_send_signal(\n"
            "                os.pidfd_open(pid), signal.SIGKILL)),\n"
            "            attempt(fresh)]\n"
        )
        outcome = call(probe, f"probe({sleeper.pid})", sandbox)
        assert sleeper.poll() is None
        assert returned(outcome) == ["PermissionError"] * 5 + ["ImportError"]
    finally:
        sleeper.kill()
        sleeper.wait()
