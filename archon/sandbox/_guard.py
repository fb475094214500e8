"""The audit-hook guard of the ``audit-hook`` fallback (standard library only: its source also
runs inside the sandbox). Where bubblewrap works, namespaces do this job and the guard is off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

_REFUSED_IMPORTS = frozenset(
    {
        "_ctypes", "ctypes", "_posixsubprocess", "_sqlite3", "sqlite3", "_testcapi",
        "_testinternalcapi", "_xxsubinterpreters", "_xxinterpchannels", "_tkinter",
        "posix", "_signal",
    }
)  # fmt: skip
"""Modules never imported once the guard is on. ``posix`` and ``_signal`` are loaded by then:
importing them again would build fresh copies with the functions the guard replaced."""

_REPLACED = {
    "os": ("mkfifo", "mknod", "pidfd_open"),
    "posix": ("mkfifo", "mknod", "pidfd_open"),
    "signal": ("pidfd_send_signal",),
    "_signal": ("pidfd_send_signal",),
}
"""Functions that raise no audit event, replaced by ones that refuse: FIFOs and device nodes,
and signals to processes by pidfd."""


def guard(root: str, readable: tuple[str, ...], hidden: tuple[str, ...] = ()) -> None:
    """The audit-hook fallback: refuse processes, sockets, native code, ``..`` in relative
    paths and directories outside ``root`` (so no ``dir_fd`` escape), reads outside ``root``
    and ``readable`` (the interpreter and system libraries) or inside ``hidden`` (installed
    packages, which may hold datasets with their answers), anything under ``/proc/<pid>``,
    listings of directories outside ``root`` and ``readable``, metadata changes through file
    descriptors of files outside ``root``, FIFOs, device nodes, pidfds and writes outside
    ``root``. Self-contained: it calls no function a candidate can replace."""
    # Every function the hook calls is captured now, before any candidate code runs; the
    # helpers below only build closures over what they are given.
    root = root.rstrip("/") or "/"
    inside = _guard_within(root)
    absolute = _guard_resolver(os.getcwd, os.fspath, str, bytes)
    descriptor = _guard_descriptor(os.readlink, str)
    readable_path = _guard_readable(readable, hidden)
    check_open = _guard_open_check(inside, absolute, os.stat, readable_path)
    sys.addaudithook(_guard_hook(root, inside, absolute, descriptor, readable_path, check_open))
    for module_name, names in _REPLACED.items():
        module = sys.modules.get(module_name)
        for name in names:
            if module is not None and hasattr(module, name):
                setattr(module, name, _guard_refusal(module_name + "." + name))


def _guard_refusal(name: str) -> Callable[..., NoReturn]:
    """A stand-in for a function the guard refuses."""

    def refused(*args: object, **kwargs: object) -> NoReturn:
        raise PermissionError("sandbox: " + name + " is not allowed")

    return refused


def _guard_descriptor(
    readlink: Callable[[str], str], str_: type[str]
) -> Callable[[int], str | None]:
    """The path of an open file descriptor (from ``/proc/self/fd``), or None when it has none
    (a pipe, a socket, an anonymous inode) or cannot be read."""

    def descriptor(fd: int) -> str | None:
        try:
            target = readlink("/proc/self/fd/" + str_(fd))
        except BaseException:
            return None
        return target if type(target) is str_ and target.startswith("/") else None

    return descriptor


def _guard_readable(readable: tuple[str, ...], hidden: tuple[str, ...]) -> Callable[[str], bool]:
    """Whether an absolute, normalised path outside the sandbox folder may be read or listed:
    inside ``readable``, not inside ``hidden``, not under ``/proc/<pid>``."""

    def proc_entry(path: str) -> bool:
        parts = path.split("/")
        return (
            len(parts) > 2
            and parts[1] == "proc"
            and (parts[2].isdigit() or parts[2] in ("self", "thread-self"))
        )

    def readable_path(path: str) -> bool:
        if proc_entry(path):
            return False
        return any(path == p or path.startswith(p + "/") for p in readable) and not any(
            path == p or path.startswith(p + "/") for p in hidden
        )

    return readable_path


def _guard_within(root: str) -> Callable[[str], bool]:
    """Whether an absolute, normalised path is ``root`` or below it."""

    def inside(path: str) -> bool:
        return path == root or path.startswith(root + "/")

    return inside


def _guard_resolver(
    getcwd: Callable[[], str], fspath: Any, str_: type[str], bytes_: type[bytes]
) -> Callable[[object], str | None]:
    """A path argument of an audit event as a normalised absolute path, or None when it is
    not a path or is relative with ``..`` (relative to a dir_fd the hook cannot see)."""

    def absolute(path: object) -> str | None:
        try:
            text = fspath(path)
        except BaseException:
            return None
        if type(text) is bytes_:
            text = text.decode("utf-8", "surrogateescape")
        if type(text) is not str_:
            return None
        if not text.startswith("/"):
            if ".." in text.split("/"):  # relative to a dir_fd the hook cannot see
                return None
            text = getcwd() + "/" + text
        parts: list[str] = []
        for part in text.split("/"):
            if part == "..":
                if parts:
                    parts.pop()
            elif part and part != ".":
                parts.append(part)
        return "/" + "/".join(parts)

    return absolute


def _guard_open_check(
    inside: Callable[[str], bool],
    absolute: Callable[[object], str | None],
    stat: Callable[[str], os.stat_result],
    readable_path: Callable[[str], bool],
) -> Callable[[object, object, object], None]:
    """The check of an ``open`` event: raises ``PermissionError`` for what it refuses."""
    str_ = str
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def check_open(raw: object, mode: object, flags: object) -> None:
        if type(raw) is int:
            return
        path = absolute(raw)
        if path is None:
            raise PermissionError("sandbox: unrecognised path")
        wants = (type(mode) is str_ and any(c in mode for c in "wax+")) or (
            type(flags) is int and flags & writing
        )
        if inside(path):
            return
        if wants:
            raise PermissionError("sandbox: writing outside the temporary directory")
        if not readable_path(path):
            raise PermissionError("sandbox: reading outside the system directories")
        try:
            is_dir = (stat(path).st_mode & 0o170000) == 0o040000
        except OSError:
            return
        if is_dir:
            raise PermissionError("sandbox: directories outside the temporary directory")

    return check_open


def _guard_hook(
    root: str,
    inside: Callable[[str], bool],
    absolute: Callable[[object], str | None],
    descriptor: Callable[[int], str | None],
    readable_path: Callable[[str], bool],
    check_open: Callable[[object, object, object], None],
) -> Callable[[str, tuple[Any, ...]], None]:
    """The audit hook: ``open`` checks, refused imports and events, paths of other events (a
    file descriptor stands for the file it is open on), listed directories."""
    refused = frozenset(
        {
            "socket.__new__", "socket.connect", "socket.bind", "socket.sendto",
            "socket.sendmsg", "socket.getaddrinfo", "socket.gethostbyname",
            "socket.gethostbyaddr", "socket.getnameinfo", "subprocess.Popen", "os.system",
            "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill",
            "os.killpg", "signal.pthread_kill", "pty.spawn", "ctypes.dlopen", "ctypes.dlsym",
            "ctypes.cdata", "os.symlink", "os.link", "gc.get_objects", "gc.get_referrers",
            "gc.get_referents", "sys._current_frames", "os.chroot", "os.putenv",
            "os.unsetenv", "shutil.chown", "sqlite3.connect", "mmap.__new__",
        }
    )  # fmt: skip
    path_events = {
        "os.remove": 1, "os.rmdir": 1, "os.mkdir": 1, "os.rename": 2, "os.replace": 2,
        "os.chmod": 1, "os.chown": 1, "os.truncate": 1, "os.utime": 1, "shutil.rmtree": 1,
        "shutil.copyfile": 2, "shutil.move": 2, "os.chflags": 1, "os.setxattr": 1,
        "os.removexattr": 1, "os.chdir": 1,
    }  # fmt: skip
    listings = frozenset({"os.listdir", "os.scandir"})

    def where(raw: object) -> str | None:
        if raw is None:  # os.listdir() and os.scandir() list the working directory
            raw = "."
        return descriptor(raw) if type(raw) is int else absolute(raw)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            check_open(*args[:3])
        elif event == "import" and args and args[0] in _REFUSED_IMPORTS:
            raise ImportError(f"sandbox: importing {args[0]} is not allowed")
        elif event in refused:
            raise PermissionError("sandbox: " + event + " is not allowed")
        elif event in path_events:
            for raw in args[: path_events[event]]:
                path = where(raw)
                if path is None or not inside(path):
                    raise PermissionError(f"sandbox: {event} outside the temporary directory")
        elif event in listings:
            path = where(args[0] if args else None)
            if path is None or not (inside(path) or readable_path(path)):
                raise PermissionError("sandbox: listing a directory outside the system folders")

    return hook
