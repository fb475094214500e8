"""Memory for a whole sandbox, where a cgroup v2 with the memory controller is delegated to
archon: each sandbox gets its own child cgroup, ``memory.max`` = ``memory_mb`` plus
:data:`OVERHEAD_MB` for the runner itself, no swap, and :data:`~.confine.NPROC` pids. Every
process of the sandbox and the pages of its private ``tmpfs`` count against it.

Where archon may create such cgroups: the folder :data:`CGROUP_ENV` names (a delegated
cgroup, e.g. made under ``systemd-run --user -p Delegate=yes``), else archon's own cgroup
(``/proc/self/cgroup``) when it is writable and already hands the memory controller to its
children (``cgroup.subtree_control``). Anything else -- cgroup v1, no memory controller, a
read-only ``/sys/fs/cgroup`` (most containers) -- means no cgroup: the per-process bound of
:mod:`._inside` holds alone.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import time
from pathlib import Path

from archon.processes import pid_alive

CGROUP_ENV = "ARCHON_SANDBOX_CGROUP"
"""A delegated cgroup v2 folder under which archon makes one cgroup per sandbox."""
OVERHEAD_MB = 64
"""Memory allowed on top of ``memory_mb``: bubblewrap and the runner's own interpreter."""
PREFIX = "archon-"
_REMOVE_S = 2.0


def _mounts(mountinfo: str) -> list[str]:
    """Mount points of cgroup v2 file systems."""
    found: list[str] = []
    with contextlib.suppress(OSError), open(mountinfo, encoding="utf-8") as handle:
        for line in handle:
            left, _, right = line.partition(" - ")
            if right.split(" ", 1)[0] == "cgroup2":
                found.append(left.split(" ")[4])
    return found


def _own(proc_cgroup: str, mountinfo: str) -> Path | None:
    """This process's cgroup v2 folder, or None."""
    relative = None
    with contextlib.suppress(OSError), open(proc_cgroup, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("0::"):
                relative = line[3:].strip()
    if relative is None:
        return None
    for mount in _mounts(mountinfo):
        folder = Path(mount) / relative.lstrip("/")
        if folder.is_dir():
            return folder
    return None


def usable(folder: Path) -> bool:
    """Whether archon may make cgroups with a memory limit in ``folder``."""
    try:
        controllers = (folder / "cgroup.subtree_control").read_text(encoding="utf-8").split()
    except OSError:
        return False
    return "memory" in controllers and os.access(folder, os.W_OK | os.X_OK)


def find(
    env: str | None = None,
    proc_cgroup: str = "/proc/self/cgroup",
    mountinfo: str = "/proc/self/mountinfo",
) -> Path | None:
    """Where to make sandbox cgroups (see the module docstring), or None."""
    named = os.environ.get(CGROUP_ENV, "") if env is None else env
    candidate = Path(named) if named.strip() else _own(proc_cgroup, mountinfo)
    if candidate is None or not usable(candidate):
        return None
    sweep_stale(candidate)
    return candidate


@functools.cache
def base() -> Path | None:
    """:func:`find` for this process, checked once."""
    return find()


def create(parent: Path, memory_mb: int, nproc: int) -> Path | None:
    """A new cgroup for one sandbox, limits written; None when the kernel refuses it."""
    folder = parent / f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        folder.mkdir()
        (folder / "memory.max").write_text(str((memory_mb + OVERHEAD_MB) << 20))
    except OSError:
        remove(folder)
        return None
    for name, value in (("memory.swap.max", "0"), ("pids.max", str(nproc))):
        with contextlib.suppress(OSError):
            (folder / name).write_text(value)
    return folder


def wrap(argv: list[str], folder: Path) -> list[str]:
    """``argv`` started inside ``folder``: a shell joins it, then becomes ``argv``, so every
    process the sandbox ever has is in it."""
    script = 'echo $$ > "$0/cgroup.procs" && exec "$@"'
    return ["/bin/sh", "-c", script, str(folder), *argv]


def remove(folder: Path) -> None:
    """Kill what is left in ``folder`` and remove it."""
    kill = folder / "cgroup.kill"
    if kill.exists():  # Linux 5.14
        with contextlib.suppress(OSError):
            kill.write_text("1")
    deadline = time.monotonic() + _REMOVE_S
    while True:
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)


def sweep_stale(parent: Path) -> list[Path]:
    """Remove the sandbox cgroups of archon processes that no longer run."""
    removed: list[Path] = []
    with contextlib.suppress(OSError):
        for entry in parent.iterdir():
            pid, _, rest = entry.name.removeprefix(PREFIX).partition("-")
            stale = entry.name.startswith(PREFIX) and pid.isdigit() and rest
            if stale and not pid_alive(int(pid)) and entry.is_dir():
                remove(entry)
                removed.append(entry)
    return removed
