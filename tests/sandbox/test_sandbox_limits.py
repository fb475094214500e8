"""Memory per sandbox, not per process, and nothing left behind when archon is killed: for
bubblewrap (``namespace``) and for the ``audit-hook`` fallback, with and without ``unshare``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from archon.sandbox import Sandbox, _cgroup, _seccomp, confine, run_calls, run_stdio

MODES = ["namespace", "audit-hook", "audit-hook-bare"]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The sandbox mode (bubblewrap, or the fallback with and without ``unshare``)."""
    if request.param != "namespace":
        monkeypatch.setenv(confine.FALLBACK_ENV, "fallback")
    if request.param == "audit-hook-bare":
        monkeypatch.setattr(confine, "_unshare", lambda: None)
    return str(request.param)


def _sandbox(mode: str) -> Sandbox:
    return Sandbox(isolation="namespace" if mode == "namespace" else "audit-hook")


HOLDERS = """
import os, threading

MB400 = 400 << 20

def hold():
    return b"\\x01" * MB400  # every page touched

def probe():
    # Six processes each holding 400 MiB, then as many 400 MiB blocks as this one can hold.
    read, write = os.pipe()
    forked = 0
    for _ in range(6):
        try:
            pid = os.fork()
        except Exception:
            continue
        if pid == 0:
            try:
                block = hold()
                os.write(write, b"x")
                import time
                time.sleep(3)
            finally:
                os._exit(0)
        forked += 1
    blocks = []
    for _ in range(6):
        try:
            blocks.append(hold())
        except MemoryError:
            break
    threads = []
    def in_thread():
        try:
            blocks.append(hold())
        except MemoryError:
            pass
    for _ in range(3):
        thread = threading.Thread(target=in_thread)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    os.close(write)
    import time
    time.sleep(1.0)
    children = 0
    os.set_blocking(read, False)
    try:
        children = len(os.read(read, 64))
    except OSError:
        pass
    return [forked, children, len(blocks)]
"""


def test_a_candidate_cannot_hold_more_than_memory_mb(mode: str) -> None:
    """The probe that found it: six processes x 400 MiB under ``memory_mb=1024`` held
    2.45 GB. Now a candidate is one process (threads allowed): at most two 400 MiB blocks."""
    report = asyncio.run(
        run_calls(HOLDERS, ["probe()"], memory_mb=1024, timeout_s=20, sandbox=_sandbox(mode))
    )
    outcome = report.outcomes[0]
    assert outcome.status == "ok", outcome
    forked, children, blocks = eval(outcome.value or "")
    assert forked == 0 and children == 0
    assert 1 <= children + blocks <= 2  # at most ~1024 MiB held, all of it in one process


def test_a_program_may_use_about_memory_mb_in_one_process(mode: str) -> None:
    code = (
        "import sys\nn = int(sys.stdin.read())\nblock = b'1' * (n << 20)\nprint(len(block) >> 20)"
    )
    report = asyncio.run(
        run_stdio(code, ["700\n", "1100\n"], memory_mb=1024, sandbox=_sandbox(mode))
    )
    assert (report.outcomes[0].status, report.outcomes[0].value.strip()) == ("ok", "700")
    assert report.outcomes[1].status == "error"
    assert report.outcomes[1].error == "MemoryError"


def test_processes_are_refused_with_a_clear_error_and_threads_work(mode: str) -> None:
    code = textwrap.dedent(
        """
        import os, threading
        def fork():
            try:
                os.fork()
            except Exception as error:
                return type(error).__name__
            return "forked"
        def spawn():
            try:
                import subprocess
                subprocess.run(["/bin/true"])
            except Exception as error:
                return type(error).__name__
            return "spawned"
        def threads():
            out = []
            workers = [threading.Thread(target=out.append, args=(i,)) for i in range(4)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            return sorted(out)
        """
    )
    report = asyncio.run(
        run_calls(code, ["fork()", "spawn()", "threads()"], sandbox=_sandbox(mode))
    )
    values = [o.value for o in report.outcomes]
    assert values[0] == "'PermissionError'"
    assert values[1] in ("'PermissionError'", "'ImportError'")  # the fallback's guard
    assert values[2] == "[0, 1, 2, 3]"


def test_the_no_fork_filter_refuses_processes_and_allows_threads() -> None:
    """The filter itself, loaded as the runner loads it, in a throwaway interpreter."""
    program = _seccomp.no_fork_program()
    if program is None:
        pytest.skip("no filter on this architecture")
    script = textwrap.dedent(
        f"""
        import os, sys, threading
        from archon.sandbox._inside import _native
        assert _native(None, {program.hex()!r}, forget=True)
        assert "ctypes" not in sys.modules and "_ctypes" not in sys.modules
        out = []
        t = threading.Thread(target=out.append, args=(1,))
        t.start(); t.join()
        try:
            os.fork()
        except PermissionError:
            print("refused", out)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.stdout.strip() == "refused [1]", done.stderr


def test_other_machines_have_no_filter_or_their_own() -> None:
    assert _seccomp.no_fork_program("riscv64") is None
    x86, arm = _seccomp.no_fork_program("x86_64"), _seccomp.no_fork_program("aarch64")
    assert x86 and arm and x86 != arm and len(x86) % 8 == 0 and len(arm) % 8 == 0


ARCHON = """
import asyncio, sys
from archon.sandbox import Sandbox, run_calls, run_tests
mode = sys.argv[1]
code = "def spin():\\n    while True:\\n        pass\\n"
box = Sandbox(isolation="namespace" if mode == "namespace" else "audit-hook")
async def main():
    await asyncio.gather(
        run_calls(code, ["spin()"], timeout_s=120, sandbox=box),
        run_tests(code, ["while True: pass"], timeout_s=120, sandbox=box),
    )
asyncio.run(main())
"""


def _children() -> dict[int, int]:
    """pid -> parent pid of every process."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            parents[int(name)] = int(stat.rpartition(")")[2].split()[1])
    return parents


def _descendants(root: int) -> set[int]:
    parents = _children()
    found, changed = {root}, True
    while changed:
        new = {pid for pid, parent in parents.items() if parent in found} - found
        changed = bool(new)
        found |= new
    return found - {root}


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def test_nothing_survives_archon_killed_with_sigkill(mode: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    archon = subprocess.Popen(
        [sys.executable, "-c", ARCHON, mode],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        sandbox: set[int] = set()
        # Two runners, the candidate's child spinning, and whatever wraps them.
        while time.monotonic() < deadline and len(sandbox) < 3:
            time.sleep(0.5)
            sandbox = _descendants(archon.pid)
        time.sleep(1.0)
        sandbox = _descendants(archon.pid)
        assert len(sandbox) >= 3, "the sandboxes did not start"
    finally:
        os.kill(archon.pid, signal.SIGKILL)
        archon.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_running(p) for p in sandbox):
        time.sleep(0.1)
    left = [p for p in sandbox if _running(p)]
    for pid in left:  # do not leave them to the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes outlived archon: {left}"


def test_stale_sandbox_folders_are_swept(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = tmp_path / f"{confine.SANDBOX_PREFIX}{gone.pid}-abc"
    live = tmp_path / f"{confine.SANDBOX_PREFIX}{os.getpid()}-abc"
    stale.mkdir()
    live.mkdir()
    assert confine.sweep_stale(str(tmp_path)) == [str(stale)]
    assert live.exists() and not stale.exists()


def _fake_cgroup(tmp_path: Path, controllers: str) -> Path:
    folder = tmp_path / "cg"
    folder.mkdir()
    (folder / "cgroup.subtree_control").write_text(controllers)
    return folder


def test_a_delegated_cgroup_is_used_when_named(tmp_path: Path) -> None:
    folder = _fake_cgroup(tmp_path, "cpu memory pids\n")
    assert _cgroup.find(env=str(folder)) == folder
    made = _cgroup.create(folder, 1024, 64)
    assert made is not None and made.parent == folder
    limit = int((made / "memory.max").read_text())
    assert limit == (1024 + _cgroup.OVERHEAD_MB) << 20
    assert (made / "memory.swap.max").read_text() == "0"
    argv = _cgroup.wrap(["bwrap", "--", "python"], made)
    assert argv[:2] == ["/bin/sh", "-c"] and argv[3:] == [str(made), "bwrap", "--", "python"]


def test_no_cgroup_without_the_memory_controller(tmp_path: Path) -> None:
    assert _cgroup.find(env=str(_fake_cgroup(tmp_path, "cpu pids\n"))) is None
    assert _cgroup.find(env=str(tmp_path / "missing")) is None


def test_own_cgroup_is_found_from_proc(tmp_path: Path) -> None:
    mount = tmp_path / "fs"
    (mount / "user.slice" / "me").mkdir(parents=True)
    (mount / "user.slice" / "me" / "cgroup.subtree_control").write_text("memory\n")
    proc = tmp_path / "cgroup"
    proc.write_text("4:memory:/x\n0::/user.slice/me\n")
    info = tmp_path / "mountinfo"
    info.write_text(f"30 25 0:26 / {mount} rw,nosuid - cgroup2 cgroup2 rw\n")
    assert _cgroup.find("", str(proc), str(info)) == mount / "user.slice" / "me"
    proc.write_text("4:memory:/x\n")  # cgroup v1 only
    assert _cgroup.find("", str(proc), str(info)) is None


def test_stale_cgroups_are_swept(tmp_path: Path) -> None:
    folder = _fake_cgroup(tmp_path, "memory\n")
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = folder / f"{_cgroup.PREFIX}{gone.pid}-00"
    stale.mkdir()
    (folder / f"{_cgroup.PREFIX}{os.getpid()}-00").mkdir()
    assert _cgroup.sweep_stale(folder) == [stale]


def test_this_machine_reports_whether_the_cgroup_bound_holds() -> None:
    """Informational: the job says which memory bound holds for each runner."""
    if confine.mode() != "namespace":
        pytest.skip("needs bubblewrap")
    spec = confine.launch("namespace", "server", 256)
    try:
        assert spec.job["cgroup"] is (_cgroup.base() is not None)
        program = _seccomp.no_fork_program()
        assert spec.job["no_fork"] == (program.hex() if program else None)
    finally:
        spec.close()
