"""Run model-written Python in isolated processes: tests, function calls, stdin/stdout runs.

Public API (also used by evaluation for pass@k)::

    report = await run_tests(code, ["assert add(1, 2) == 3"], timeout_s=5, memory_mb=512)
    report.passed, report.outcomes[0].status            # 1, "passed"
    calls = await run_calls(code, ["add(1, 2)", "add('a', 'b')"])
    calls.outcomes[0].value                             # "3"
    runs = await run_stdio(program, ["1 2\\n"])
    runs.outcomes[0].value                              # the program's stdout

Verdicts the candidate cannot write
-----------------------------------
The candidate never runs where a verdict is decided, and nothing it can write is read as a
verdict. Three kinds of process take part:

* **archon** (trusted) starts the other two, relays between them, and decides pass/fail.
* **the server** (one sandbox) holds the candidate's program, compiled, and never runs it
  itself: every request -- list the program's top-level names, call a function, evaluate
  an expression, run the program as ``__main__`` on an input -- runs in a child forked for
  that request alone, which loads the program from scratch (no request sees another's
  state), does its work, writes a result and exits; the server kills it at its deadline.
* **the tester** (a second sandbox) runs the tests. It never sees the candidate's code: each
  name the candidate defines is bound to a proxy whose calls travel as plain values to
  archon, which forwards them to the server, and the returned value comes back the same
  way. Names a test defines, and every builtin name (``abs``, ``len``...), are never taken
  from the candidate, so a test's own helpers and comparisons are the test's.

Between archon and the sandboxes only plain values travel (see :mod:`._wire`): ``None``,
``bool``, ``int``, ``float``, ``str``, ``bytes``, ``list``, ``tuple``, ``dict``, ``set``,
recognised with ``type(v) is ...``. archon decodes the server's bytes with a strict decoder
and re-encodes them with its own code before the tester sees them. So:

* an always-equal object, an ``int`` subclass, a patched ``__eq__`` or ``__repr__``: the
  tester receives an opaque placeholder (or the plain value underneath), which equals
  nothing it should not;
* patching ``json``, ``sys``, ``builtins`` or ``posixpath``, writing fake records to any
  fd, printing protocol lines, ``os._exit(0)``, ``sys.exit(0)``, ``atexit`` or ``__del__``
  tricks, signal handlers: they act only in the candidate's own child, whose only output
  is the value it returns -- at most a wrong value -- and whose death is an error;
* the expected values live in the tests, in the tester, which the candidate cannot reach;
  ``io`` tests' expected output never leaves archon.

Tests may call the candidate's top-level functions with plain arguments (mutations of
list, dict and set arguments are copied back) and read its plain top-level values; other
objects the candidate returns (class instances, generators) are opaque, so a test that
needs them fails. A candidate's exception is re-raised in the tester as the builtin
exception of that name when there is one (``ValueError``...), so tests that expect an
exception still work; ``SystemExit`` and the like become an ordinary error.

Isolation (see :mod:`.confine`)
-------------------------------
``isolation()`` is ``"namespace"`` where bubblewrap works: user (unless archon runs as
root, then a random unprivileged uid), PID, network, IPC and UTS namespaces, a read-only view
of ``/usr`` and the interpreter only (installed-package folders shown empty: packages may
carry datasets with their answers), a private size-capped ``/sandbox`` (cwd, ``HOME``), a
minimal environment (never archon's: no API keys), no capabilities,
``PR_SET_NO_NEW_PRIVS``, a seccomp deny-list (x86-64), a new session, and ``RLIMIT_NPROC``.
Killing the sandbox ends its PID namespace and every process in it, including ones that
called ``setsid``. Without bubblewrap, running code raises :class:`SandboxUnavailable`
unless the user opts in with ``ARCHON_SANDBOX=fallback``: then ``"audit-hook"``, a fallback
where only an audit hook guards the filesystem (plus network and PID namespaces when
``unshare`` works); a warning says once that it is not a security boundary.

Limits in every mode, set by the runner before any candidate code, soft = hard: CPU time,
address space (``memory_mb``, at least :data:`MIN_MEMORY_MB`), file size (16 MiB), open
files (64), no core dumps.

Memory is bounded per sandbox, not per process. Every process that runs untrusted code (the
candidate's child, the tester) first loads a seccomp filter that allows threads but no new
process (``os.fork``, ``subprocess``, ``multiprocessing`` get ``PermissionError``; see
:mod:`._seccomp`), so the candidate is one process and ``RLIMIT_AS`` = ``memory_mb`` bounds
all it can hold: a program may use up to about ``memory_mb`` and gets ``MemoryError`` above
it. This holds in both modes, on x86-64 and aarch64; elsewhere ``RLIMIT_NPROC`` is 0 in
those processes (no threads either; as root in the fallback it does not apply). The
runners themselves hold the compiled program and plain values only. Where a cgroup v2 with
the memory controller is delegated to archon (``ARCHON_SANDBOX_CGROUP``, or archon's own
cgroup; see :mod:`._cgroup`), each runner also gets a cgroup of its own: ``memory_mb`` plus a
small overhead for all its processes and its ``tmpfs`` pages, no swap, and a pid limit.
Without one, the namespace mode's ``tmpfs`` (256 MiB) is memory on top of ``memory_mb``.

Nothing outlives archon, even killed with ``SIGKILL``: bubblewrap runs with
``--die-with-parent`` (its PID namespace, and every process in it, ends with it); the runner
asks for ``SIGKILL`` when its parent dies (``PR_SET_PDEATHSIG``, then checks that its parent
is still the expected one), and so does each candidate child with its server; in the
fallback, ``unshare`` runs under ``setpriv --pdeathsig KILL`` and kills the runner when it
ends. A runner whose pipe from archon closes exits at its next read. Fallback folders of
dead archon processes are swept when a new fallback sandbox starts, as are stale cgroups.

``timeout_s`` bounds the program's top-level code and each test, call or run; the deadlines
are enforced by processes the candidate does not control.

Concurrency: each run holds one slot of its :class:`Sandbox`'s ``limit``; the module
functions use a fresh unbounded ``Sandbox()`` unless given one. Layers call them through
their context (``ctx.run_tests`` and friends), which bounds the runs of a whole pipeline run
by ``Limits.sandbox_concurrency``.
"""

from __future__ import annotations

from collections.abc import Sequence

from archon.sandbox.api import (
    MIN_MEMORY_MB,
    CallOutcome,
    CallsReport,
    CallStatus,
    Sandbox,
    SandboxError,
    SandboxReport,
    Status,
    TestOutcome,
    normalise_output,
)
from archon.sandbox.confine import Isolation, SandboxUnavailable, isolation
from archon.values import TestCase

__all__ = [
    "MIN_MEMORY_MB",
    "CallOutcome",
    "CallStatus",
    "CallsReport",
    "Isolation",
    "Sandbox",
    "SandboxError",
    "SandboxReport",
    "SandboxUnavailable",
    "Status",
    "TestOutcome",
    "isolation",
    "normalise_output",
    "run_calls",
    "run_stdio",
    "run_tests",
]


async def run_tests(
    code: str,
    tests: Sequence[str | TestCase],
    *,
    timeout_s: float = 5.0,
    memory_mb: int = 512,
    sandbox: Sandbox | None = None,
) -> SandboxReport:
    """Run ``code`` against each test, isolated (see the module docstring).

    Args:
        code: the program (use :func:`archon.layers.answers.extract_code` on a model reply first).
        tests: Python statements (a string or a ``code`` :class:`TestCase`: passed when it
            runs without raising), or ``io`` test cases (the program runs as ``__main__``
            with ``stdin``; passed when it exits 0 and its output equals ``stdout`` after
            :func:`normalise_output`).
        timeout_s: limit for the program's top-level code and for each test.
        memory_mb: address-space limit of each process (at least :data:`MIN_MEMORY_MB`).
        sandbox: where to run (default: a fresh ``Sandbox()``).

    Returns:
        One :class:`TestOutcome` per test, in order. Never raises for anything the code
        does; cancelling the caller kills every process of the run.

    Raises:
        SandboxError: a natural-language check, or an io test without ``stdout``.
    """
    runner = sandbox or Sandbox()
    return await runner.run_tests(code, tests, timeout_s=timeout_s, memory_mb=memory_mb)


async def run_calls(
    code: str,
    calls: Sequence[str],
    *,
    timeout_s: float = 5.0,
    memory_mb: int = 512,
    sandbox: Sandbox | None = None,
) -> CallsReport:
    """Load ``code``, then evaluate each expression of ``calls`` (e.g. ``"add(1, 2)"``) in a
    fresh copy of the loaded program, so no call can affect another's value.

    Each :class:`CallOutcome` has ``status`` ``ok``/``error``/``timeout``; ``value`` the
    canonical text of the returned value, written by archon from plain values only
    (``repr`` for floats, dict items and set members sorted by their text, anything else
    ``<unrepresentable TYPENAME>``); ``error`` the exception's type name. When the program
    itself does not load, every call has that status and error.
    """
    runner = sandbox or Sandbox()
    return await runner.run_calls(code, calls, timeout_s=timeout_s, memory_mb=memory_mb)


async def run_stdio(
    code: str,
    inputs: Sequence[str],
    *,
    timeout_s: float = 5.0,
    memory_mb: int = 512,
    sandbox: Sandbox | None = None,
) -> CallsReport:
    """Run ``code`` as a program (``__name__ == "__main__"``) once per input, with that
    text on stdin. ``value`` is its stdout (at most 64 KiB); ``status`` is ``ok`` on exit
    status 0, ``error`` otherwise (``error``: the exception's type name, ``SystemExit`` for
    a non-zero exit, ``ProcessExit`` when it died), ``timeout`` past ``timeout_s``."""
    runner = sandbox or Sandbox()
    return await runner.run_stdio(code, inputs, timeout_s=timeout_s, memory_mb=memory_mb)
