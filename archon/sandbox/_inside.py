"""The program that runs inside the sandbox. Standard library only: archon sends this source
(after those of :mod:`._wire` and :mod:`._guard`) with ``python -c``; ``sys.argv[1]`` picks
the role.

``server``
    Holds the candidate's compiled program and never runs it itself. For each request it
    forks a child that runs the program from scratch (so no request sees another's state),
    does one thing -- list the program's names, call one of its functions, evaluate an
    expression, or run it as ``__main__`` on an input -- writes a result file and exits.
    The server kills the child at its deadline and answers with one JSON line.
``tester``
    Runs the tests. It never sees the candidate's code: every name the candidate defines is a
    proxy whose calls travel as plain values to archon, which checks them and forwards them to
    the server. It answers with one result line per test.

Every process here dies with its parent (``PR_SET_PDEATHSIG``: the runner with the process
that started it, each child with the server), and every process that runs untrusted code --
the candidate's child, the tester -- first loads the no-fork filter (see :mod:`._seccomp`):
it may start threads, never processes, so ``RLIMIT_AS`` (``memory_mb``) bounds all the
memory it holds. ``ctypes``, used for this, is dropped from ``sys.modules`` before any such
code runs.

Both roles read JSON lines on a private copy of fd 0 and write them on a private copy of
fd 1; fds 0-2 then point at ``/dev/null``. The first line is the job.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, BinaryIO

if __package__:  # imported by archon (tests, type checking); inside, these sources precede
    from archon.sandbox._guard import guard
    from archon.sandbox._wire import (
        HARNESS_ERROR,
        Opaque,
        decode,
        encode,
        has_opaque,
        opaque_name,
        type_name,
    )

_RESULT_CAP = 1 << 20  # bytes of one child's result
_SETUP_CAP = 3 << 20  # bytes of the names a loaded program lists (under the 4 MiB line cap)
_INLINE_CAP = 2 << 20  # bytes of global values sent whole to the tester, all together
RESULT_TOO_LARGE = "ResultTooLarge"
"""The error a call reports when its result is over the cap: a harness error, no verdict."""
_STDOUT_CAP = 1 << 16  # bytes of a program's standard output that are kept
_MESSAGE_CAP = 300


def _compile(source: str, filename: str, mode: str) -> Any:
    """Compile model-written or test code as a plain program: no ``__future__`` feature of
    this runner (e.g. postponed annotations) carries over."""
    return compile(source, filename, mode, flags=0, dont_inherit=True)


class _Timeout(BaseException):
    """Raised by SIGALRM; a BaseException so that ``except Exception`` cannot swallow it."""


class _HarnessError(BaseException):
    """A test the harness cannot carry out (e.g. a value that cannot cross to the candidate);
    a BaseException so that the test's ``except Exception`` cannot turn it into a verdict."""


def _alarm(signum: int, frame: object) -> None:
    raise _Timeout()


def _message(error: BaseException) -> str:
    try:
        return str(error)[:_MESSAGE_CAP]
    except BaseException:  # a candidate's __str__ may raise anything
        return ""


def _short(error: BaseException) -> str:
    text = _message(error)
    return (type_name(error) + (": " + text if text else ""))[:_MESSAGE_CAP]


def _guarded(work: Callable[[], Any], seconds: float) -> tuple[str, Any, BaseException | None]:
    """("ok", value, None), ("timeout", None, None) or ("error", None, exception)."""
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
            value = work()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Timeout:
        return "timeout", None, None
    except BaseException as error:
        return "error", None, error
    return "ok", value, None


class Channel:
    """JSON lines in on a private copy of fd 0, out on a private copy of fd 1."""

    def __init__(self) -> None:
        self.reader: BinaryIO = os.fdopen(os.dup(0), "rb")
        self.out = os.dup(1)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)

    def receive(self) -> Any:
        line = self.reader.readline()
        if not line:
            raise EOFError
        return json.loads(line)

    def send(self, message: object) -> None:
        data = (json.dumps(message, separators=(",", ":")) + "\n").encode()
        while data:
            data = data[os.write(self.out, data) :]

    def close(self) -> None:
        """Children close the channel before running any candidate code."""
        self.reader.close()
        os.close(self.out)


def _limits(job: dict[str, Any]) -> None:
    """Soft = hard, so the candidate cannot raise them again."""
    import resource

    values = {
        "RLIMIT_CPU": int(job["cpu_s"]),
        "RLIMIT_AS": int(job["memory_mb"]) * 1024 * 1024,
        "RLIMIT_FSIZE": 16 * 1024 * 1024,
        "RLIMIT_NOFILE": 64,
        "RLIMIT_CORE": 0,
    }
    if job.get("nproc"):
        values["RLIMIT_NPROC"] = int(job["nproc"])
    for name, value in values.items():
        limit = getattr(resource, name, None)
        if limit is not None:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(limit, (value, value))


_PR_SET_PDEATHSIG, _PR_SET_SECCOMP, _PR_SET_NO_NEW_PRIVS = 1, 22, 38
_SECCOMP_MODE_FILTER = 2


def _native(parent: int | None, no_fork: str | None, forget: bool) -> bool:
    """Die with the parent (SIGKILL when the thread that started this process ends; when
    ``parent`` is given and is no longer the parent -- it died before this call -- exit at
    once) and load the ``no_fork`` filter (hex). Whether the filter is on. ``forget``:
    drop ``ctypes`` from ``sys.modules`` afterwards (untrusted code follows here)."""
    loaded = False
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
        prctl.argtypes = [ctypes.c_int, *[ctypes.c_ulong] * 4]
        prctl.restype = ctypes.c_int
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if parent is not None and os.getppid() != parent:
            os._exit(1)
        if no_fork:
            program = bytes.fromhex(no_fork)
            buffer = ctypes.create_string_buffer(program, len(program))

            class _Program(ctypes.Structure):
                _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

            fprog = _Program(len(program) // 8, ctypes.addressof(buffer))
            loaded = prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 and (
                prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) == 0
            )
    except Exception:  # no ctypes here: the caller falls back on RLIMIT_NPROC
        loaded = False
    finally:
        if forget:
            for name in [n for n in sys.modules if n.partition(".")[0] in ("ctypes", "_ctypes")]:
                del sys.modules[name]
    return loaded


def _no_processes(job: dict[str, Any], parent: int | None) -> None:
    """Before untrusted code: die with the parent, and never start a process -- the filter,
    else ``RLIMIT_NPROC`` 0 (which refuses threads too)."""
    if not _native(parent, job.get("no_fork"), forget=True):
        import resource

        with contextlib.suppress(ValueError, OSError, AttributeError):
            resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))


def _drop_privileges(job: dict[str, Any]) -> None:
    """Run as the job's unprivileged uid (when archon runs as root): this also clears every
    capability the sandbox started with."""
    uid = job.get("uid")
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)


def _wait(pid: int, deadline: float, group: bool) -> int | None:
    """The child's wait status, or None after killing it at ``deadline``."""
    try:
        handle = os.pidfd_open(pid)
    except (AttributeError, OSError):
        handle = -1
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if handle >= 0:
                poller = select.poll()
                poller.register(handle, select.POLLIN)
                poller.poll(left * 1000)
            else:
                time.sleep(min(left, 0.002))
    finally:
        if handle >= 0:
            os.close(handle)
    for kill in (os.killpg, os.kill) if group else (os.kill,):
        with contextlib.suppress(OSError):
            kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def _remove_tree(path: str) -> None:
    for folder, dirs, files in os.walk(path, topdown=False):
        for name in files:
            _quietly(os.unlink, os.path.join(folder, name))
        for name in dirs:
            _quietly(os.rmdir, os.path.join(folder, name))
    _quietly(os.rmdir, path)


def _quietly(action: Callable[[str], None], path: str) -> None:
    with contextlib.suppress(OSError):
        action(path)


def _describe(namespace: dict[str, Any]) -> list[list[Any]]:
    """The program's top-level names as the tester binds them (at most 500)."""
    names: list[list[Any]] = []
    inlined = 0  # values sent whole stay under the setup cap, whatever their number
    for name, value in list(namespace.items())[:500]:
        if type(name) is not str or name.startswith("__"):
            continue
        if type(value) is type(builtins):
            names.append(["m", name, getattr(value, "__name__", "")])
        elif callable(value):
            names.append(["f", name])
        else:
            wire = encode(value)
            size = len(json.dumps(wire)) if wire[0] != "u" else 0
            if wire[0] == "u" or inlined + size > _INLINE_CAP:
                names.append(["o", name, type_name(value)])
            else:
                inlined += size
                names.append(["v", name, wire])
    return names


class Server:
    """The ``server`` role: one forked child per request (see the module docstring)."""

    def __init__(self, job: dict[str, Any], channel: Channel) -> None:
        self.job = job
        self.channel = channel
        self.timeout = float(job["timeout"])
        self.setup_s = 0.0
        self.count = 0
        self.code: Any = None
        self.compile_error: BaseException | None = None
        try:
            self.code = _compile(job["code"], "<candidate>", "exec")
        except BaseException as error:  # SyntaxError, but also MemoryError, RecursionError
            self.compile_error = error

    def serve(self) -> None:
        error = self.compile_error
        self.channel.send({"compiled": error is None, "message": _short(error) if error else ""})
        while True:
            try:
                request = self.channel.receive()
            except (EOFError, ValueError):
                return
            self.channel.send(self.handle(request))

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.compile_error is not None:
            error = self.compile_error
            return {"status": "error", "error": type_name(error), "message": _message(error)}
        self.count += 1
        folder = f"{self.job['root']}/r{self.count}"
        os.mkdir(folder)
        if request["op"] == "main":
            with open(f"{folder}/in", "w", encoding="utf-8", errors="replace") as f:
                f.write(request.get("stdin", ""))
        started = time.monotonic()
        allowed = self.timeout if request["op"] == "setup" else self.setup_s + self.timeout
        try:
            result = self.fork(request, folder, started + allowed + 0.5)
        finally:
            _remove_tree(folder)
        if request["op"] == "setup":
            self.setup_s = min(self.timeout, time.monotonic() - started)
        return result

    def fork(self, request: dict[str, Any], folder: str, deadline: float) -> dict[str, Any]:
        group = bool(self.job.get("groups"))
        server = os.getpid()
        pid = os.fork()
        if pid == 0:
            self.child(request, folder, group, server)
        if group:
            with contextlib.suppress(OSError):
                os.setpgid(pid, pid)
        status = _wait(pid, deadline, group)
        if status is None:
            return {"status": "timeout"}
        result = _read_result(f"{folder}/res")
        if request["op"] == "main":
            result.setdefault("status", "ok" if os.waitstatus_to_exitcode(status) == 0 else "error")
            result["exit"] = os.waitstatus_to_exitcode(status)
            result["stdout"] = _read_capped(f"{folder}/out")
        elif not result:
            result = {"status": "error", "error": "ProcessExit", "message": "the process ended"}
        return result

    def child(self, request: dict[str, Any], folder: str, group: bool, server: int) -> None:
        """Runs in the forked child; never returns."""
        code = 70
        try:
            if group:
                os.setpgid(0, 0)
            self.channel.close()
            os.chdir(folder)
            _no_processes(self.job, server)
            if self.job.get("guard"):
                guard(self.job["root"], *_guard_paths(self.job))
            if request["op"] == "main":
                code = self.run_main(folder)
            else:
                self.run_loaded(request, folder)
                code = 0
        finally:
            os._exit(code)

    def run_loaded(self, request: dict[str, Any], folder: str) -> None:
        namespace: dict[str, Any] = {"__name__": "solution", "__builtins__": builtins}
        status, _, error = _guarded(lambda: exec(self.code, namespace), self.timeout)
        if status == "ok":
            budget = min(float(request.get("timeout", self.timeout)), self.timeout)
            status, result, error = _guarded(lambda: _perform(request, namespace), budget)
        else:
            result = {"stage": "load"}
        if status != "ok":
            result = {"status": status, **(result or {})}
            if error is not None:
                result.update(error=type_name(error), message=_message(error))
        _write_result(f"{folder}/res", result)

    def run_main(self, folder: str) -> int:
        """Run the program as ``__main__`` with ``in`` as stdin and ``out`` as stdout."""
        # sys.stdin and sys.stdout have not been used yet: they now read and write the files.
        os.dup2(os.open(f"{folder}/in", os.O_RDONLY), 0)
        os.dup2(os.open(f"{folder}/out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
        namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        status, _, error = _guarded(lambda: exec(self.code, namespace), self.timeout)
        code = 0 if status == "ok" else 1
        if isinstance(error, SystemExit):
            code = _exit_code(error.code)
        try:
            sys.stdout.flush()
        except BaseException as flush_error:
            code, error = code or 1, error or flush_error
        if status == "timeout":
            _write_result(f"{folder}/res", {"status": "timeout"})
        elif code:
            _write_result(f"{folder}/res", {"status": "error", "error": type_name(error)})
        return code


def _guard_paths(job: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(job.get("readable", ())), tuple(job.get("hidden", ()))


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    return value & 0xFF if type(value) is int else 1


def _perform(request: dict[str, Any], namespace: dict[str, Any]) -> dict[str, Any]:
    """Do the request's work in the loaded namespace; the result is encoded here, under the
    same time limit."""
    op = request["op"]
    if op == "setup":
        return {"status": "ok", "names": _describe(namespace)}
    if op == "eval":
        value = eval(_compile(request["expr"], "<call>", "eval"), namespace)
        return {"status": "ok", "value": encode(value)}
    args = decode(request["args"])
    kwargs = decode(request["kwargs"])
    if type(args) is not list or type(kwargs) is not dict:
        raise TypeError("bad call")
    function = namespace.get(request["name"])
    if function is None:
        raise NameError(f"name {request['name']!r} is not defined")
    value = function(*args, **kwargs)
    result: dict[str, Any] = {"status": "ok", "value": encode(value)}
    if request.get("mutable"):
        result["args"] = [encode(a) for a in args]
    return result


def _write_result(path: str, result: dict[str, Any]) -> None:
    data = json.dumps(result, separators=(",", ":"))
    cap = _SETUP_CAP if "names" in result else _RESULT_CAP
    if len(data) > cap:
        too_large = {"status": "error", "error": RESULT_TOO_LARGE}
        message = f"the result is larger than {cap // (1 << 20)} MB"
        data = json.dumps({**too_large, "message": message})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(data)


def _read_result(path: str) -> dict[str, Any]:
    """What the child wrote (it may be anything: archon checks it), or {}."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(_SETUP_CAP + 1)
        result = json.loads(data)
    except (OSError, ValueError):
        return {}
    return result if type(result) is dict else {}


def _read_capped(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(_STDOUT_CAP)
    except OSError:
        return ""
    return data.decode("utf-8", "replace")


class Proxy:
    """Stands in the tester for a function of the candidate: calls go to the server."""

    def __init__(self, name: str, tester: Tester) -> None:
        self.__name__ = self.__qualname__ = name
        self._tester = tester

    def __repr__(self) -> str:
        return f"<candidate function {self.__name__}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._tester.call(self.__name__, args, kwargs)


class CandidateError(Exception):
    """The candidate raised an exception that is not a builtin one."""


class Tester:
    """The ``tester`` role (see the module docstring)."""

    def __init__(self, job: dict[str, Any], channel: Channel) -> None:
        self.job = job
        self.channel = channel
        self.timeout = float(job["timeout"])

    def serve(self) -> None:
        """Wait for the tests and the candidate's names (archon sends them once the program
        has loaded), then run the tests in order."""
        work = self.channel.receive()
        namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        self.bind(namespace, work["names"])
        for index, test in enumerate(work["tests"]):
            status, message = self.run(index, test, namespace)
            self.channel.send({"op": "result", "status": status, "message": message})
        self.channel.send({"op": "done"})

    def bind(self, namespace: dict[str, Any], names: list[list[Any]]) -> None:
        """The candidate's top-level names, as if the tests ran after its code: one that
        shadows a builtin (a function named ``sum``) is the candidate's; names a test defines
        are bound later, when it runs, and win."""
        for entry in names:
            kind, name = entry[0], entry[1]
            if name in namespace or name.startswith("__"):
                continue
            if kind == "f":
                namespace[name] = Proxy(name, self)
            elif kind == "v":
                namespace[name] = decode(entry[2])
            elif kind == "m" and entry[2].partition(".")[0] in sys.stdlib_module_names:
                try:
                    namespace[name] = __import__(entry[2], fromlist=["_"])
                except BaseException:
                    namespace[name] = Opaque("module")
            else:
                namespace[name] = Opaque(str(entry[2]) if len(entry) > 2 else "object")

    def run(self, index: int, test: str, namespace: dict[str, Any]) -> tuple[str, str]:
        try:
            code = _compile(test, f"<test {index + 1}>", "exec")
        except BaseException as failure:
            return "error", _short(failure)
        status, _, error = _guarded(lambda: exec(code, namespace), self.timeout)
        if status == "timeout":
            return "timeout", f"timed out after {self.timeout:g}s"
        if isinstance(error, _HarnessError):
            return "error", (HARNESS_ERROR + _message(error))[:_MESSAGE_CAP]
        if isinstance(error, AssertionError):
            return "failed", _short(error) if str(error) else "assertion failed"
        if error is not None:
            return "error", _short(error)
        return "passed", ""

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        wire_args, wire_kwargs = encode(list(args)), encode(kwargs)
        if has_opaque(wire_args) or has_opaque(wire_kwargs):
            what = opaque_name(wire_args) or opaque_name(wire_kwargs)
            raise _HarnessError(
                f"{name}(): only plain values can be passed to the candidate, not a {what}"
            )
        left, _ = signal.setitimer(signal.ITIMER_REAL, 0)  # archon times the call
        left = left or self.timeout
        started = time.monotonic()
        mutable = any(type(a) in (list, dict, set, bytearray) for a in args)
        self.channel.send(
            {"op": "call", "name": name, "args": wire_args, "kwargs": wire_kwargs,
             "timeout": left, "mutable": mutable}
        )  # fmt: skip
        reply = self.channel.receive()
        left -= time.monotonic() - started
        if reply.get("status") == "timeout" or left <= 0:
            raise _Timeout()
        signal.setitimer(signal.ITIMER_REAL, left)
        if reply.get("status") != "ok":
            if reply.get("error") == RESULT_TOO_LARGE:
                raise _HarnessError(f"{name}(): result too large ({reply.get('message', '')})")
            raise _candidate_error(str(reply.get("error")), str(reply.get("message", "")))
        if mutable and type(reply.get("args")) is list:
            for before, after in zip(args, reply["args"], strict=False):
                _write_back(before, decode(after))
        return decode(reply["value"])


def _write_back(before: Any, after: Any) -> None:
    """Mutations the candidate made to a list, dict, set or bytearray argument."""
    if type(before) in (list, bytearray) and type(after) is type(before):
        before[:] = after
    elif type(before) in (dict, set) and type(after) is type(before):
        before.clear()
        before.update(after)


def _candidate_error(name: str, message: str) -> Exception:
    """A builtin exception of that name (tests may expect e.g. ValueError), else a
    :class:`CandidateError`. Never a BaseException such as SystemExit."""
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception) and kind is not StopIteration:
        try:
            return kind(message)
        except BaseException:
            pass
    return CandidateError(f"{name}: {message}" if message else name)


def _expected_parent() -> int | None:
    """The parent archon named (``sys.argv[2]``), when it can see it from here."""
    word = sys.argv[2] if len(sys.argv) > 2 else ""
    return int(word) if word.isdigit() else None


def main() -> None:
    errors = os.dup(2)  # for a failed start only; closed before any untrusted code runs
    channel = Channel()  # archon gone before the job: its end of the pipe closes, we exit
    try:
        job = channel.receive()
        _drop_privileges(job)  # a new uid clears the death signal: set it after this
        # Die with the parent: archon killed with SIGKILL leaves nothing behind. The server
        # keeps ctypes loaded for its children (each drops it before untrusted code).
        _native(_expected_parent(), None, forget=job["role"] != "server")
        _limits(job)
        signal.signal(signal.SIGALRM, _alarm)
        role: Server | Tester = (Server if job["role"] == "server" else Tester)(job, channel)
        if job["role"] != "server":
            _no_processes(job, None)
        if job.get("guard") and job["role"] != "server":
            guard(job["root"], *_guard_paths(job))
    except BaseException as failure:
        os.write(errors, f"sandbox runner failed to start: {_short(failure)}\n".encode())
        raise SystemExit(1) from None
    os.close(errors)
    role.serve()


if __name__ == "__main__":
    main()
