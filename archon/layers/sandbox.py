"""Run model-written Python against tests in an isolated subprocess (never in-process).

Public API (also used by evaluation for pass@k)::

    report = await run_tests(code, ["assert add(1, 2) == 3"], timeout_s=5, memory_mb=512)
    report.passed, report.outcomes[0].status   # 1, "passed"

What one call does:

* a fresh temporary directory is the child's working directory, ``HOME`` and ``TMPDIR``;
  it is deleted afterwards;
* the child is ``python -I -S`` (isolated: no environment variables, no user or site
  packages) started in its own process group with stdin closed and a minimal environment;
* network: when ``unshare -rn`` works on this machine the child runs in new user and network
  namespaces (no interface but loopback) -- ``isolation`` on the report says
  ``"namespace"``; otherwise ``"audit-hook"``: only the in-process guard below applies;
* in both cases, before the candidate's code runs the runner installs a ``sys.addaudithook``
  guard (hooks cannot be removed) that refuses sockets (connect, bind, send, DNS),
  subprocesses, ``fork``/``exec``, ``ctypes``, links, and any write, rename or delete outside
  the temporary directory;
* resource limits are set by the runner itself, before the candidate's code, with
  ``resource.setrlimit`` (soft = hard, so they cannot be raised again): CPU seconds, address
  space (``memory_mb``, at least :data:`MIN_MEMORY_MB`), file size (16 MiB), open files and
  core dumps. They are not set in ``preexec_fn``, which is unsafe when the parent has threads
  (e.g. a local model's worker). ``RLIMIT_NPROC`` is not set: it counts every process of the
  user, so any value would break threads on a busy machine; process creation is refused by
  the audit hook instead.
* ``timeout_s`` bounds the candidate's top-level code and each test separately (SIGALRM in
  the child); a wall-clock limit of ``timeout_s * (len(tests) + 1) + 2`` seconds kills the
  whole process group, and tests without a result are reported as ``timeout``.

The guards protect the host from buggy or careless code; they are not a boundary against
code written to escape (use a container or VM for that). A candidate could, for example,
forge its own results; scoring does not rely on the candidate being honest about itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from archon.layers.parsing import extract_code

__all__ = [
    "MIN_MEMORY_MB",
    "Isolation",
    "SandboxReport",
    "Status",
    "TestOutcome",
    "extract_code",
    "isolation",
    "run_tests",
]

Status = Literal["passed", "failed", "error", "timeout"]
Isolation = Literal["namespace", "audit-hook"]

MIN_MEMORY_MB = 64
"""The address-space limit never goes below this: the interpreter itself needs it."""

_OUTPUT_CAP = 1 << 20  # bytes of result output read from the child
_MESSAGE_CAP = 300


@dataclass(frozen=True)
class TestOutcome:
    """The result of one test: its status and a short message (empty when it passed)."""

    __test__ = False  # not a pytest class
    status: Status
    message: str = ""


@dataclass(frozen=True)
class SandboxReport:
    """All outcomes of one :func:`run_tests` call, in test order."""

    outcomes: tuple[TestOutcome, ...]
    isolation: Isolation
    setup: TestOutcome = TestOutcome("passed")
    """How the candidate's top-level code went (``error`` e.g. for a syntax error)."""

    @property
    def passed(self) -> int:
        return sum(o.status == "passed" for o in self.outcomes)

    @property
    def total(self) -> int:
        return len(self.outcomes)


_RUNNER = r"""
import json, os, signal, sys

class _Timeout(BaseException):
    pass

def _alarm(signum, frame):
    raise _Timeout()

def _limits(job):
    import resource
    cpu = int(job["cpu_s"])
    memory = int(job["memory_mb"]) * 1024 * 1024
    for name, value in (("RLIMIT_CPU", cpu), ("RLIMIT_AS", memory),
                        ("RLIMIT_FSIZE", 16 * 1024 * 1024), ("RLIMIT_NOFILE", 64),
                        ("RLIMIT_CORE", 0)):
        limit = getattr(resource, name, None)
        if limit is None:
            continue
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):
            pass

def _guard(root):
    root = os.path.normpath(root)
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    refused = {
        "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
        "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
        "socket.getnameinfo", "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn",
        "os.spawn", "os.fork", "os.forkpty", "os.kill", "os.killpg", "pty.spawn",
        "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "os.symlink", "os.link",
        "gc.get_objects", "gc.get_referrers", "gc.get_referents",
        "sys._current_frames", "os.chroot", "os.putenv", "os.unsetenv", "shutil.chown",
    }
    path_events = {
        "os.remove": 1, "os.rmdir": 1, "os.mkdir": 1, "os.rename": 2, "os.replace": 2,
        "os.chmod": 1, "os.chown": 1, "os.truncate": 1, "os.utime": 1, "shutil.rmtree": 1,
        "shutil.copyfile": 2, "shutil.move": 2, "os.chflags": 1, "os.setxattr": 1,
        "os.removexattr": 1,
    }
    abspath, fspath, str_ = os.path.abspath, os.fspath, str

    def inside(path):
        if isinstance(path, int):
            return True
        try:
            p = abspath(fspath(path))
        except Exception:
            return False
        if isinstance(p, bytes):
            p = p.decode("utf-8", "replace")
        return p == root or p.startswith(root + os.sep)

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            wants = (isinstance(mode, str_) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & writing)
            if wants and not inside(path):
                raise PermissionError("sandbox: writing outside the temporary directory")
        elif event in refused:
            raise PermissionError("sandbox: " + event + " is not allowed")
        elif event in path_events:
            for path in args[: path_events[event]]:
                if not inside(path):
                    raise PermissionError("sandbox: " + event + " outside the temporary directory")

    sys.addaudithook(hook)

def _short(error):
    text = type(error).__name__ + (": " + str(error) if str(error) else "")
    return text[:300]

def _run(source, name, namespace, timeout):
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        exec(compile(source, name, "exec"), namespace)
        return "passed", ""
    except _Timeout:
        return "timeout", "timed out after %gs" % timeout
    except AssertionError as error:
        return "failed", ("AssertionError: " + str(error)) if str(error) else "assertion failed"
    except BaseException as error:
        return "error", _short(error)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)

def _main():
    with open(sys.argv[1], encoding="utf-8") as handle:
        job = json.load(handle)
    out = os.fdopen(os.dup(1), "w", buffering=1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    def emit(kind, status, message):
        out.write(json.dumps({"kind": kind, "status": status, "message": message}) + "\n")
    signal.signal(signal.SIGALRM, _alarm)
    _limits(job)
    _guard(job["root"])
    timeout = float(job["timeout_s"])
    namespace = {"__name__": "solution", "__builtins__": __builtins__}
    status, message = _run(job["code"], "<candidate>", namespace, timeout)
    emit("setup", status, message)
    for index, test in enumerate(job["tests"]):
        if status != "passed":
            emit("test", "timeout" if status == "timeout" else "error",
                 "candidate code did not load: " + message)
            continue
        emit("test", *_run(test, "<test %d>" % (index + 1), namespace, timeout))

_main()
"""


@functools.cache
def isolation() -> Isolation:
    """``"namespace"`` when ``unshare -rn`` works here (checked once per process)."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return "audit-hook"
    try:
        done = subprocess.run(
            [unshare, "-rn", "true"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "audit-hook"
    return "namespace" if done.returncode == 0 else "audit-hook"


def _argv(job_path: str) -> list[str]:
    prefix = ["unshare", "-rn"] if isolation() == "namespace" else []
    return [*prefix, sys.executable, "-I", "-S", "-c", _RUNNER, job_path]


def _env(root: str) -> dict[str, str]:
    return {"HOME": root, "TMPDIR": root, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


async def _read_capped(stream: asyncio.StreamReader | None, into: bytearray) -> None:
    """Read until EOF or the cap; partial output stays in ``into`` if this is interrupted."""
    if stream is None:
        return
    while len(into) < _OUTPUT_CAP:
        chunk = await stream.read(65536)
        if not chunk:
            return
        into += chunk


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _parse(data: bytes, tests: int, timed_out: bool) -> tuple[TestOutcome, list[TestOutcome]]:
    setup = TestOutcome("passed")
    outcomes: list[TestOutcome] = []
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            record = json.loads(line)
            outcome = TestOutcome(record["status"], str(record["message"])[:_MESSAGE_CAP])
        except (ValueError, KeyError, TypeError):
            continue
        if outcome.status not in ("passed", "failed", "error", "timeout"):
            continue
        if record.get("kind") == "setup":
            setup = outcome
        elif len(outcomes) < tests:
            outcomes.append(outcome)
    missing = TestOutcome(
        "timeout" if timed_out else "error",
        "killed at the wall-clock limit" if timed_out else "the process ended early",
    )
    outcomes += [missing] * (tests - len(outcomes))
    return setup, outcomes


async def run_tests(
    code: str, tests: Sequence[str], *, timeout_s: float = 5.0, memory_mb: int = 512
) -> SandboxReport:
    """Run ``code`` then each test (``assert`` statements) in one sandboxed subprocess.

    Args:
        code: the program (use :func:`extract_code` on a model reply first).
        tests: Python statements; a test passes when it runs without raising.
        timeout_s: limit for the program's top-level code and for each test.
        memory_mb: address-space limit of the child (at least :data:`MIN_MEMORY_MB`).

    Returns:
        One :class:`TestOutcome` per test, in order. Never raises for anything the code
        does; cancelling the caller kills the child's process group.
    """
    root = os.path.realpath(tempfile.mkdtemp(prefix="archon-sandbox-"))
    wall = timeout_s * (len(tests) + 1) + 2.0
    job = {
        "code": code,
        "tests": list(tests),
        "timeout_s": timeout_s,
        "cpu_s": int(wall) + 1,
        "memory_mb": max(MIN_MEMORY_MB, memory_mb),
        "root": root,
    }
    try:
        job_path = os.path.join(root, "job.json")
        with open(job_path, "w", encoding="utf-8") as handle:
            json.dump(job, handle)
        data, timed_out = await _execute(_argv(job_path), root, wall)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    setup, outcomes = _parse(data, len(tests), timed_out)
    return SandboxReport(tuple(outcomes), isolation(), setup)


async def _execute(argv: list[str], root: str, wall: float) -> tuple[bytes, bool]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=root,
        env=_env(root),
        start_new_session=True,
    )
    timed_out = False
    data = bytearray()
    try:
        await asyncio.wait_for(_read_capped(process.stdout, data), wall)
    except TimeoutError:
        timed_out = True
    finally:
        _kill_group(process.pid)
        await process.wait()
    return bytes(data[:_OUTPUT_CAP]), timed_out
