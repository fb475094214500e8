"""One sandboxed runner process as archon sees it: JSON lines in and out, with deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from typing import Any

from archon.sandbox.confine import Isolation, Launch, launch

LINE_CAP = 4 << 20
"""Longest line archon reads from a runner; a longer one ends that runner."""
_STDERR_CAP = 4096
_SEND_S = 30.0  # a runner that reads nothing for this long is gone
_STOP_S = 2.0


class RunnerGone(Exception):
    """The runner ended, broke the protocol, or missed a deadline (``timed_out``)."""

    def __init__(self, reason: str, *, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.timed_out = timed_out


class Runner:
    """A started runner. Use :meth:`start`; always :meth:`stop` it (it kills everything)."""

    def __init__(self, process: asyncio.subprocess.Process, spec: Launch) -> None:
        self._process = process
        self._spec = spec
        self._stderr = b""
        self._stopped = False
        self.gone: str | None = None

    @classmethod
    async def start(cls, mode: Isolation, role: str, job: dict[str, Any]) -> Runner:
        """Start a runner in ``role`` and send it ``job`` (plus the mode's own settings)."""
        spec = launch(mode, role, job.get("memory_mb"))
        try:
            process = await asyncio.create_subprocess_exec(
                *spec.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=spec.cwd,
                env=spec.env,
                pass_fds=spec.pass_fds,
                start_new_session=True,
                limit=LINE_CAP,
            )
        except BaseException:
            spec.close()
            raise
        runner = cls(process, spec)
        try:
            await runner.send({**job, **spec.job, "role": role})
        except RunnerGone:  # it died at once; its first receive() says so
            pass
        except BaseException:  # cancellation: never leave a runner behind
            await runner.stop()
            raise
        return runner

    def diagnostics(self) -> str:
        """What the sandbox itself printed, e.g. why bubblewrap could not start (known once
        stopped; the runner itself writes nothing there)."""
        return self._stderr.decode("utf-8", "replace").strip()

    async def send(self, message: dict[str, Any]) -> None:
        """Write one line; :class:`RunnerGone` when the runner no longer reads."""
        if self.gone is not None:
            raise RunnerGone(self.gone)
        stdin = self._process.stdin
        assert stdin is not None
        try:
            stdin.write((json.dumps(message, separators=(",", ":")) + "\n").encode())
            await asyncio.wait_for(stdin.drain(), _SEND_S)
        except (ConnectionError, OSError) as error:
            raise self._fail(f"the runner stopped reading ({type(error).__name__})") from None
        except TimeoutError:
            raise self._fail("the runner stopped reading", timed_out=True) from None

    async def receive(self, timeout: float) -> dict[str, Any]:
        """The next line as a JSON object, within ``timeout`` seconds."""
        if self.gone is not None:
            raise RunnerGone(self.gone)
        stdout = self._process.stdout
        assert stdout is not None
        try:
            line = await asyncio.wait_for(stdout.readline(), max(timeout, 0.01))
        except TimeoutError:
            raise self._fail("no answer in time", timed_out=True) from None
        except ValueError:  # a line over LINE_CAP
            raise self._fail("an overlong answer") from None
        if not line:
            raise self._fail("the runner ended")
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):  # deep nesting is a RecursionError
            raise self._fail("an answer that is not JSON") from None
        if not isinstance(message, dict):
            raise self._fail("an answer that is not an object")
        return message

    def _fail(self, reason: str, *, timed_out: bool = False) -> RunnerGone:
        self.gone = reason
        self._kill()
        return RunnerGone(reason, timed_out=timed_out)

    def _kill(self) -> None:
        # The runner leads its own process group; in the namespace mode it is bubblewrap,
        # whose death ends the PID namespace and every process in it. Not Process.kill():
        # it polls, which would reap the process behind asyncio's child watcher.
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)

    async def stop(self) -> None:
        """Kill the runner and everything it started, wait for it, release its resources.
        Calling it again does nothing."""
        if self._stopped:
            return
        self._stopped = True
        self.gone = self.gone or "stopped"
        self._kill()
        try:
            stderr = self._process.stderr
            if stderr is not None:  # every writer is dead: this returns at once
                with contextlib.suppress(OSError, ValueError, TimeoutError):
                    self._stderr = await asyncio.wait_for(stderr.read(_STDERR_CAP), _STOP_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._process.wait(), _STOP_S)
        finally:
            self._close_transport()
            self._spec.close()

    def _close_transport(self) -> None:
        """Close our ends of the pipes now (a dying sandbox may still hold theirs)."""
        transport = getattr(self._process, "_transport", None)
        if transport is None:
            return
        if self._process.returncode is not None:
            transport.close()  # polls only a process whose exit is not known yet
            return
        for fd in (0, 1, 2):
            pipe = transport.get_pipe_transport(fd)
            if pipe is not None:
                pipe.close()
