"""The execution API: :class:`Sandbox` and its three ways of running a candidate program."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from archon.errors import ArchonError
from archon.sandbox._process import Runner, RunnerGone
from archon.sandbox._session import Reply, Server
from archon.sandbox._wire import HARNESS_ERROR, WireError, canonical, decode, encode
from archon.sandbox.confine import Isolation, isolation
from archon.values import TestCase

Status = Literal["passed", "failed", "error", "timeout"]
CallStatus = Literal["ok", "error", "timeout"]

MIN_MEMORY_MB = 64
"""The address-space limit never goes below this: the interpreter itself needs it."""

_GRACE_S = 2.0


class SandboxError(ArchonError):
    """A test the sandbox cannot run (e.g. a natural-language check, or an io test without
    an expected output)."""


@dataclass(frozen=True)
class TestOutcome:
    """The result of one test: its status and a short message (empty when it passed)."""

    __test__ = False  # not a pytest class
    status: Status
    message: str = ""

    @property
    def harness_error(self) -> bool:
        """Whether the harness could not carry the test out (e.g. it passes the candidate a
        value that cannot cross to it): an ``error``, but no verdict on the candidate."""
        return self.status == "error" and self.message.startswith(HARNESS_ERROR)


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


@dataclass(frozen=True)
class CallOutcome:
    """One call or one program run.

    Attributes:
        status: ``ok``, ``error`` (an exception, or a non-zero exit) or ``timeout``.
        value: for :func:`run_calls`, the canonical text of the returned value (see
            :func:`archon.sandbox._wire.canonical`); for :func:`run_stdio`, the
            program's standard output (at most 64 KiB); None when there is none.
        error: the exception's type name (``ValueError``, ``SyntaxError``, ``SystemExit``,
            ``ProcessExit`` when the process died), else None.
    """

    status: CallStatus
    value: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class CallsReport:
    """The outcomes of one :func:`run_calls` or :func:`run_stdio` call, in input order."""

    outcomes: tuple[CallOutcome, ...]
    isolation: Isolation


def normalise_output(text: str) -> str:
    """Program output as ``io`` tests compare it: trailing whitespace of each line and
    trailing blank lines removed."""
    return "\n".join(line.rstrip() for line in text.split("\n")).rstrip("\n")


@dataclass(frozen=True)
class _Case:
    kind: Literal["code", "io"]
    text: str = ""
    stdin: str = ""
    expected: str = ""


def _case(test: str | TestCase) -> _Case:
    if isinstance(test, str):
        return _Case("code", test)
    if test.kind == "code":
        return _Case("code", test.text)
    if test.kind == "io":
        if test.stdout is None:
            raise SandboxError("an io test needs the expected `stdout` to compare with")
        return _Case("io", stdin=test.stdin, expected=test.stdout)
    raise SandboxError(
        "a natural-language check cannot be executed: judge it with a model "
        "(unit_test_evaluate's `model`)"
    )


class Sandbox:
    """Runs candidate programs in isolated processes.

    Args:
        isolation: ``"namespace"`` (bubblewrap), ``"audit-hook"`` (the weak fallback), or
            None for the best this machine has (:func:`isolation`).
        limit: at most this many runs at once through this object: a number, or a shared
            :class:`asyncio.Semaphore` (use it within one event loop). None: no bound.
    """

    def __init__(
        self,
        isolation: Isolation | None = None,
        limit: int | asyncio.Semaphore | None = None,
    ) -> None:
        self._isolation = isolation
        self._limit = asyncio.Semaphore(limit) if isinstance(limit, int) else limit

    @property
    def isolation(self) -> Isolation:
        """The mode runs use."""
        return self._isolation or isolation()

    @contextlib.asynccontextmanager
    async def _runners(
        self, code: str, timeout_s: float, memory_mb: int, *, tester: bool = False
    ) -> AsyncIterator[tuple[Server, Runner | None]]:
        """The server (ready) and, when asked, a tester that booted alongside it."""
        async with contextlib.AsyncExitStack() as stack:
            if self._limit is not None:
                await stack.enter_async_context(self._limit)
            memory = max(MIN_MEMORY_MB, memory_mb)
            server = await Server.start(self.isolation, code, timeout_s, memory)
            stack.push_async_callback(server.stop)
            started = None
            if tester:
                job = {"timeout": timeout_s, "memory_mb": memory, "cpu_s": int(timeout_s * 4) + 4}
                started = await Runner.start(self.isolation, "tester", job)
                stack.push_async_callback(started.stop)
            await server.ready()
            yield server, started

    @contextlib.asynccontextmanager
    async def _server(self, code: str, timeout_s: float, memory_mb: int) -> AsyncIterator[Server]:
        async with self._runners(code, timeout_s, memory_mb) as (server, _):
            yield server

    async def run_tests(
        self,
        code: str,
        tests: Sequence[str | TestCase],
        *,
        timeout_s: float = 5.0,
        memory_mb: int = 512,
    ) -> SandboxReport:
        """See :func:`archon.sandbox.run_tests`."""
        cases = [_case(t) for t in tests]
        outcomes: list[TestOutcome | None] = [None] * len(cases)
        code_at = [i for i, c in enumerate(cases) if c.kind == "code"]
        runners = self._runners(code, timeout_s, memory_mb, tester=bool(code_at))
        async with runners as (server, tester):
            setup, loaded = await _setup(server, loads=bool(code_at))
            if code_at:
                texts = [cases[i].text for i in code_at]
                results = await _code_tests(server, tester, setup, loaded, texts)
                for i, outcome in zip(code_at, results, strict=True):
                    outcomes[i] = outcome
                if tester is not None:
                    await tester.stop()  # before the io runs: one sandbox at a time
            for i, case in enumerate(cases):
                if case.kind == "io":
                    outcomes[i] = _io_outcome(case, await server.request("main", stdin=case.stdin))
        done = tuple(o for o in outcomes if o is not None)
        return SandboxReport(done, self.isolation, setup)

    async def run_calls(
        self, code: str, calls: Sequence[str], *, timeout_s: float = 5.0, memory_mb: int = 512
    ) -> CallsReport:
        """See :func:`archon.sandbox.run_calls`."""
        outcomes: list[CallOutcome] = []
        async with self._server(code, timeout_s, memory_mb) as server:
            loaded = await server.request("setup")
            for call in calls:
                reply = loaded if loaded.status != "ok" else await server.request("eval", expr=call)
                outcomes.append(_call_outcome(reply))
        return CallsReport(tuple(outcomes), self.isolation)

    async def run_stdio(
        self, code: str, inputs: Sequence[str], *, timeout_s: float = 5.0, memory_mb: int = 512
    ) -> CallsReport:
        """See :func:`archon.sandbox.run_stdio`."""
        outcomes: list[CallOutcome] = []
        async with self._server(code, timeout_s, memory_mb) as server:
            for text in inputs:
                outcomes.append(_run_outcome(await server.request("main", stdin=text)))
        return CallsReport(tuple(outcomes), self.isolation)


async def _setup(server: Server, *, loads: bool) -> tuple[TestOutcome, Reply]:
    """How the program loaded (only compiled when no test needs it loaded)."""
    if not server.compiled:
        return TestOutcome("error", server.message), Reply("error", message=server.message)
    if not loads:
        return TestOutcome("passed"), Reply("ok")
    reply = await server.request("setup")
    if reply.status == "ok":
        return TestOutcome("passed"), reply
    if reply.status == "timeout":
        return TestOutcome("timeout", f"timed out after {server.timeout_s:g}s"), reply
    text = f"{reply.error}: {reply.message}" if reply.message else str(reply.error)
    return TestOutcome("error", text), reply


async def _code_tests(
    server: Server, tester: Runner | None, setup: TestOutcome, reply: Reply, tests: list[str]
) -> list[TestOutcome]:
    """Run the tests in the tester, relaying its calls to the server."""
    if setup.status != "passed" or tester is None:
        status: Status = "timeout" if setup.status == "timeout" else "error"
        return [TestOutcome(status, f"candidate code did not load: {setup.message}")] * len(tests)
    outcomes: list[TestOutcome] = []
    gone = None
    try:
        await tester.send({"tests": tests, "names": reply.names})
        while len(outcomes) < len(tests):
            # The tester times each test itself (calls included); this is the backstop.
            message = await tester.receive(server.timeout_s * 2 + _GRACE_S)
            if message.get("op") == "call":
                await tester.send((await _relay(server, message)).wire())
            elif message.get("op") == "result":
                outcomes.append(_test_outcome(message))
            else:
                break
    except RunnerGone as error:
        gone = error
    missing = (
        TestOutcome("timeout", "killed at the wall-clock limit")
        if gone is not None and gone.timed_out
        else TestOutcome("error", "the test process ended early")
    )
    return outcomes + [missing] * (len(tests) - len(outcomes))


async def _relay(server: Server, message: dict[str, Any]) -> Reply:
    """A call from the tester, checked and re-encoded for the server."""
    name = message.get("name")
    try:
        args, kwargs = decode(message.get("args")), decode(message.get("kwargs"))
    except (WireError, RecursionError):
        args = kwargs = None
    if not isinstance(name, str) or type(args) is not list or type(kwargs) is not dict:
        return Reply("error", error="TypeError", message="a malformed call")
    timeout = message.get("timeout")
    return await server.request(
        "call",
        name=name,
        args=encode(args),
        kwargs=encode(kwargs),
        mutable=message.get("mutable") is True,
        timeout=float(timeout) if isinstance(timeout, int | float) else server.timeout_s,
    )


def _test_outcome(message: dict[str, Any]) -> TestOutcome:
    status = message.get("status")
    text = message.get("message")
    text = text[:300] if isinstance(text, str) else ""
    if status in ("passed", "failed", "error", "timeout"):
        return TestOutcome(status, text)
    return TestOutcome("error", "a malformed test result")


def _io_outcome(case: _Case, reply: Reply) -> TestOutcome:
    if reply.status == "timeout":
        return TestOutcome("timeout", "timed out")
    if reply.exit != 0:
        what = reply.error or "the program"
        return TestOutcome("error", f"{what} (exit status {reply.exit}) {reply.message}".strip())
    got, expected = normalise_output(reply.stdout), normalise_output(case.expected)
    if got == expected:
        return TestOutcome("passed")
    return TestOutcome("failed", f"wrong output: {got[:120]!r}, expected {expected[:120]!r}")


def _call_outcome(reply: Reply) -> CallOutcome:
    if reply.status == "ok":
        return CallOutcome("ok", canonical(reply.value))
    if reply.status == "timeout":
        return CallOutcome("timeout")
    return CallOutcome("error", error=reply.error or "Exception")


def _run_outcome(reply: Reply) -> CallOutcome:
    if reply.status == "timeout":
        return CallOutcome("timeout")
    if reply.exit == 0:
        return CallOutcome("ok", reply.stdout)
    stdout = reply.stdout if reply.exit is not None else None
    return CallOutcome("error", stdout, reply.error or "ProcessExit")
