"""Output files: the check that a path may be written, atomic whole-file writes, and
append-only line files that never keep a torn last line.

An output path is a regular file or absent: a directory, a device (``/dev/null``), a FIFO or
a socket is refused, never replaced, never opened (opening a FIFO would block).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

NOT_A_FILE = "not a regular file (a device, FIFO or socket); give a file path"


def output_problem(path: Path) -> str | None:
    """Why ``path`` cannot be an output file (it exists and is not a regular file), or None."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"cannot be checked: {error.strerror or error}"
    if stat.S_ISDIR(mode):
        return "is a directory; give a file path"
    if not stat.S_ISREG(mode):
        return f"is {NOT_A_FILE}"
    return None


def _refuse_non_file(path: Path) -> None:
    """Raise :class:`OSError` when ``path`` exists and is not a regular file."""
    problem = output_problem(path)
    if problem is not None:
        raise OSError(errno.EINVAL, problem, str(path))


def _temporary(folder: Path, name: str) -> tuple[int, Path]:
    """A new file beside the target (mode 0o666 less the umask), open for writing."""
    while True:
        candidate = folder / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), candidate
        except FileExistsError:
            continue


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd`` (``os.write`` may write less)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _sync_folder(folder: Path) -> None:
    """Persist a rename in ``folder`` (best effort: not every system can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8) all at once: a temporary
    file in the same folder is written, fsynced and renamed over it, so a reader never sees
    a half-written file and a failed write leaves the old one in place.

    A symlink is followed (its target is replaced). An existing file keeps its permissions.

    Raises:
        OSError: the file cannot be written, or ``path`` exists and is not a regular file.
    """
    target = Path(os.path.realpath(path))
    _refuse_non_file(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, temporary = _temporary(target.parent, target.name)
    try:
        try:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(fd, stat.S_IMODE(target.stat().st_mode))
            _write_all(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        _refuse_non_file(target)  # it may have changed since the first look
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _sync_folder(target.parent)


class LineFile:
    """An append-only file of newline-terminated lines, written unbuffered.

    A line is written whole or not at all: when a write fails (a full disk, an I/O error),
    the part of the line that reached the file is cut off again, so the file always ends
    with a complete line, then the error is raised.

    Attributes:
        path: the file. ``size``: its length up to the last complete line.
        lines: the lines this object wrote.
    """

    def __init__(self, path: str | Path, *, keep: int | None = None) -> None:
        """Open ``path``: started afresh, or (``keep`` given) cut to ``keep`` bytes and
        appended to."""
        self.path = Path(path)
        _refuse_non_file(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        self._fd: int | None = os.open(self.path, flags if keep is not None else flags | os.O_TRUNC)
        if keep is not None and os.fstat(self._fd).st_size != keep:
            os.ftruncate(self._fd, keep)
        self.size = os.fstat(self._fd).st_size
        self.lines = 0

    def append(self, line: bytes) -> None:
        """Write ``line`` (a newline is added); on failure cut the partial line and raise."""
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        try:
            _write_all(self._fd, line + b"\n")
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self.size)
            raise
        self.size += len(line) + 1
        self.lines += 1

    def close(self, *, sync: bool = True) -> None:
        """Close the file, first forcing it to disk with ``sync`` (the error is raised)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)

    @property
    def closed(self) -> bool:
        return self._fd is None
