"""Where a ``.pipe`` program may read files from: its own project, never the rest of the machine.

A ``.pipe`` file is shared data, like a web page: opening one must not read your keys. So
``import "..."`` and ``file("...")`` resolve (symbolic links followed) to a path that must lie

* under the project root of the main file: the nearest directory above it that holds
  ``.git``, ``pyproject.toml`` or ``archon.toml``, else the main file's own directory; or
* under a root the user names in the environment variable ``ARCHON_PIPE_ROOTS``
  (directories separated by ``os.pathsep``);

and must be a regular file outside ``/proc``, ``/sys`` and ``/dev`` (no device, FIFO or
kernel file: those never end, block forever, or hold another process's secrets). A refused
path is an ``OSError`` whose message says why, which the loader reports as E502 (import) or
E503 (``file()``) without reading a byte of it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

PROJECT_MARKERS = (".git", "pyproject.toml", "archon.toml")
"""A directory holding one of these is a project root."""
ROOTS_VARIABLE = "ARCHON_PIPE_ROOTS"
"""More directories ``.pipe`` files may read from, separated by ``os.pathsep``."""
SYSTEM_TREES = (Path("/proc"), Path("/sys"), Path("/dev"))
"""Never read, whatever the roots say."""


class ReadRefused(OSError):
    """A ``.pipe`` program named a file it may not read (the message says why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.strerror = reason


def project_root(main_path: str) -> Path:
    """The project of the main file ``main_path`` (the working directory for text that
    has no file, such as ``<string>``)."""
    if main_path.startswith("<"):
        return Path.cwd().resolve()
    start = Path(main_path).resolve().parent
    for directory in (start, *start.parents):
        if any((directory / marker).exists() for marker in PROJECT_MARKERS):
            return directory
    return start


def allowed_roots(main_path: str, environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """The project root of ``main_path`` and the roots named in ``ARCHON_PIPE_ROOTS``."""
    env = os.environ if environ is None else environ
    named = [part for part in env.get(ROOTS_VARIABLE, "").split(os.pathsep) if part.strip()]
    return (project_root(main_path), *(Path(part).resolve() for part in named))


def check_readable(path: str | Path, roots: Sequence[Path]) -> Path:
    """The resolved ``path`` when a ``.pipe`` program may read it; else :class:`ReadRefused`
    (or the ``OSError`` of a file that does not exist)."""
    real = Path(path).resolve()
    if any(real == tree or real.is_relative_to(tree) for tree in SYSTEM_TREES):
        raise ReadRefused(f"{real} is a system file; .pipe files read project files only")
    if not any(real.is_relative_to(root) for root in roots):
        shown = ", ".join(str(root) for root in roots)
        raise ReadRefused(
            f"{real} is outside the project ({shown}); name more directories in"
            f" {ROOTS_VARIABLE} to allow them"
        )
    mode = os.stat(real).st_mode
    if not stat.S_ISREG(mode):
        raise ReadRefused(f"{real} is not a regular file (a directory, device or FIFO)")
    return real
