"""run_calls, run_stdio, io tests, the Sandbox object, the value codec and the fallback."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import archon.sandbox.api as api
from archon.eval.items import EvalItem
from archon.eval.metrics import CodePassAt1, MetricContext, sandbox_runner
from archon.runtime import Limits
from archon.sandbox import (
    CallsReport,
    Sandbox,
    SandboxError,
    confine,
    normalise_output,
    run_calls,
    run_stdio,
    run_tests,
)
from archon.sandbox._wire import MAX_DEPTH, Opaque, WireError, canonical, decode, encode
from archon.values import TestCase

MODES = ["namespace", "audit-hook"] if confine.bubblewrap() else ["audit-hook"]


@pytest.fixture(params=MODES)
def sandbox(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    if request.param == "audit-hook":
        monkeypatch.setenv(confine.FALLBACK_ENV, "fallback")  # the fallback needs the opt-in
    return Sandbox(isolation=request.param)


def calls(code: str, exprs: list[str], sandbox: Sandbox | None = None, **kw: Any) -> CallsReport:
    return asyncio.run(run_calls(code, exprs, sandbox=sandbox, **kw))


# --- run_calls ---------------------------------------------------------------------------

VALUES = """
class Int(int):
    pass
def gen():
    yield 1
"""


@pytest.mark.parametrize(
    ("expr", "text"),
    [
        ("1 + 2", "3"),
        ("0.1 + 0.2", "0.30000000000000004"),
        ("float('nan'), float('-inf'), -0.0", "(nan, -inf, -0.0)"),
        ("{3, 1, 2}", "{1, 2, 3}"),
        ("{'b': [1, (2,)], 'a': None}", "{'a': None, 'b': [1, (2,)]}"),
        ("(b'\\x00ab', True, 'x\\ny')", "(b'\\x00ab', True, 'x\\ny')"),
        ("set(), {}, [], ()", "(set(), {}, [], ())"),
        ("2 ** 200", str(2**200)),
        ("Int(3)", "<unrepresentable Int>"),
        ("[1, gen()]", "[1, <unrepresentable generator>]"),
        ("print", "<unrepresentable builtin_function_or_method>"),
    ],
)
def test_values_have_a_canonical_text(expr: str, text: str) -> None:
    outcome = calls(VALUES, [expr]).outcomes[0]
    assert (outcome.status, outcome.value, outcome.error) == ("ok", text, None)


def test_errors_timeouts_and_exits(sandbox: Sandbox) -> None:
    code = (
        "import os, sys\n"
        "def f(x):\n"
        "    if x == 1: raise ValueError('no')\n"
        "    if x == 2:\n"
        "        while True: pass\n"
        "    if x == 3: os._exit(0)\n"
        "    if x == 4: sys.exit(3)\n"
        "    return x\n"
    )
    exprs = ["f(0)", "f(1)", "f(2)", "f(3)", "f(4)", "f(", "g()"]
    report = calls(code, exprs, sandbox, timeout_s=1.0)
    got = [(o.status, o.value, o.error) for o in report.outcomes]
    assert got == [
        ("ok", "0", None),
        ("error", None, "ValueError"),
        ("timeout", None, None),
        ("error", None, "ProcessExit"),
        ("error", None, "SystemExit"),
        ("error", None, "SyntaxError"),
        ("error", None, "NameError"),
    ]
    assert report.isolation == sandbox.isolation


def test_no_call_affects_another(sandbox: Sandbox) -> None:
    code = "seen = []\ndef f(x):\n    seen.append(x)\n    return len(seen)\n"
    report = calls(code, ["f(1)", "f(2)", "f(3)"], sandbox)
    assert [o.value for o in report.outcomes] == ["1", "1", "1"]


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("def f(:", "error", "SyntaxError"),
        ("raise KeyError('x')\ndef f(): return 1", "error", "KeyError"),
        ("while True:\n    pass\n", "timeout", None),
    ],
)
def test_a_program_that_does_not_load_fails_every_call(
    code: str, status: str, error: str | None
) -> None:
    report = calls(code, ["f()", "f()"], timeout_s=1.0)
    assert [(o.status, o.error) for o in report.outcomes] == [(status, error)] * 2


def test_the_environment_is_minimal(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-parent")
    code = "import os\ndef env():\n    return sorted(os.environ)\n"
    value = calls(code, ["env()"], sandbox).outcomes[0].value
    assert value is not None and "OPENAI" not in value
    assert set(eval(value)) <= {*confine._env("/x"), "PWD"}  # bubblewrap sets PWD


# --- run_stdio and io tests ---------------------------------------------------------------

SUM = (
    "import sys\nif __name__ == '__main__':\n"
    "    print(sum(int(t) for t in sys.stdin.read().split()))\n"
)


def test_run_stdio(sandbox: Sandbox) -> None:
    report = asyncio.run(run_stdio(SUM, ["1 2\n", "4 5 6", "x"], sandbox=sandbox))
    got = [(o.status, o.value, o.error) for o in report.outcomes]
    assert got == [("ok", "3\n", None), ("ok", "15\n", None), ("error", "", "ValueError")]


def test_run_stdio_exit_status_timeout_and_cap() -> None:
    program = (
        "import sys\nline = input()\n"
        "if line == 'exit': print('bye'); sys.exit(2)\n"
        "if line == 'loop':\n    while True: pass\n"
        "if line == 'big': sys.stdout.write('x' * 200000)\n"
        "print('ok', line)\n"
    )
    report = asyncio.run(run_stdio(program, ["exit", "loop", "big", "é"], timeout_s=1.0))
    exit_, loop, big, text = report.outcomes
    assert (exit_.status, exit_.value, exit_.error) == ("error", "bye\n", "SystemExit")
    assert loop.status == "timeout"
    assert big.status == "ok" and big.value == "x" * 65536
    assert (text.status, text.value) == ("ok", "ok é\n")


def test_normalise_output() -> None:
    assert normalise_output("1 2  \n3\t\n\n\n") == "1 2\n3"
    assert normalise_output("\n1") == "\n1"  # leading blank lines count
    assert normalise_output("a\r\nb\r\n") == "a\nb"


def test_io_tests_alongside_code_tests(sandbox: Sandbox) -> None:
    program = SUM + "def double(x):\n    return 2 * x\n"
    tests = [
        TestCase(text="sum", kind="io", stdin="1 2", stdout="3  \n\n"),
        "assert double(4) == 8",
        TestCase(text="sum", kind="io", stdin="1 2", stdout="4"),
        TestCase(text="bad", kind="io", stdin="x", stdout=""),
        "assert double(1) == 3",
    ]
    report = asyncio.run(run_tests(program, tests, sandbox=sandbox))
    assert [o.status for o in report.outcomes] == ["passed", "passed", "failed", "error", "failed"]
    assert "expected '4'" in report.outcomes[2].message


def test_tests_that_cannot_run_are_an_error() -> None:
    with pytest.raises(SandboxError, match="natural-language"):
        asyncio.run(run_tests("", [TestCase(text="is nice", kind="natural")]))
    with pytest.raises(SandboxError, match="stdout"):
        asyncio.run(run_tests("", [TestCase(text="x", kind="io", stdin="1")]))


def test_the_code_metric_runs_stdin_programs() -> None:
    item = EvalItem(
        id="sum",
        turns=("sum the numbers",),
        io_tests=(
            TestCase(text="a", kind="io", stdin="1 2\n", stdout="3\n"),
            TestCase(text="b", kind="io", stdin="10 -4\n", stdout="6\n"),
        ),
    )
    ctx = MetricContext(client=None, limits=Limits(), runner=sandbox_runner)
    metric = CodePassAt1(timeout_s=3.0)
    right = asyncio.run(metric.score(item, (f"```python\n{SUM}```",), ctx))
    wrong = asyncio.run(metric.score(item, ("print(3)",), ctx))
    assert right.correct is True and right.detail == "2/2 tests passed"
    assert wrong.correct is False and wrong.detail.startswith("1/2 tests passed")


# --- tests see the candidate only through plain values --------------------------------------


def test_arguments_are_copied_back_and_exceptions_keep_their_type(sandbox: Sandbox) -> None:
    code = (
        "LIMIT = 3\n"
        "def sort_in_place(xs):\n    xs.sort()\n"
        "def check_positive(x):\n    if x < 0:\n        raise ValueError('negative')\n"
        "    return x\n"
        "def make():\n    return object()\n"
    )
    tests = [
        "xs = [3, 1, 2]\nsort_in_place(xs)\nassert xs == [1, 2, 3]",
        "try:\n    check_positive(-1)\n    assert False\nexcept ValueError as e:\n"
        "    assert 'negative' in str(e)",
        "assert LIMIT == 3",
        "assert make() is not None and make() is not make()",
        "check_positive(lambda: 1)",
    ]
    report = asyncio.run(run_tests(code, tests, sandbox=sandbox))
    assert [o.status for o in report.outcomes] == ["passed"] * 4 + ["error"]
    assert "plain values" in report.outcomes[4].message


# --- the Sandbox object --------------------------------------------------------------------


def _count_servers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """[now, most] servers open at once."""
    counts = [0, 0]
    start: Callable[..., Awaitable[api.Server]] = api.Server.start

    async def counted(*args: Any, **kwargs: Any) -> api.Server:
        server = await start(*args, **kwargs)
        counts[0] += 1
        counts[1] = max(counts[1], counts[0])
        stop = server.stop

        async def stopped() -> None:
            counts[0] -= 1
            await stop()

        server.stop = stopped  # type: ignore[method-assign]
        return server

    monkeypatch.setattr(api.Server, "start", counted)
    return counts


@pytest.mark.parametrize(("limit", "most"), [(1, 1), (2, 2), (None, 3)])
def test_a_sandbox_bounds_its_runs(
    monkeypatch: pytest.MonkeyPatch, limit: int | None, most: int
) -> None:
    counts = _count_servers(monkeypatch)

    async def three() -> None:
        box = Sandbox(limit=limit)
        code = "import time\ndef f():\n    time.sleep(0.3)\n    return 1\n"
        reports = await asyncio.gather(*(box.run_calls(code, ["f()"]) for _ in range(3)))
        assert all(r.outcomes[0].value == "1" for r in reports)

    asyncio.run(three())
    assert counts == [0, most]


def test_a_shared_semaphore_bounds_several_sandboxes(monkeypatch: pytest.MonkeyPatch) -> None:
    counts = _count_servers(monkeypatch)

    async def two() -> None:
        gate = asyncio.Semaphore(1)
        boxes = [Sandbox(limit=gate), Sandbox(limit=gate)]
        await asyncio.gather(*(b.run_calls("x = 1", ["x"]) for b in boxes))

    asyncio.run(two())
    assert counts == [0, 1]


def test_the_fallback_warns_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(confine.FALLBACK_ENV, "fallback")
    confine.warn_weak.cache_clear()
    with caplog.at_level(logging.WARNING, logger="archon.sandbox"):
        for _ in range(2):
            calls("x = 1", ["x"], Sandbox(isolation="audit-hook"))
    warnings = [r for r in caplog.records if "SANDBOX FALLBACK" in r.getMessage()]
    assert len(warnings) == 1 and "not against code written to escape" in warnings[0].getMessage()


# --- the value codec -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -(2**100), 1.5, math.inf, "é\x00", b"\xff", [1, [2]], (1,), {1: {2: 3}},
     {(1, "a"), None}, {"k": [set(), ()]}],
)  # fmt: skip
def test_plain_values_round_trip(value: object) -> None:
    assert decode(encode(value)) == value
    assert type(decode(encode(value))) is type(value)


@pytest.mark.parametrize(
    "wire",
    [
        ["b", 2], ["b", True], ["i", "1.0"], ["i", " 1"], ["i", "0x1"], ["f", "1.50"],
        ["f", "1_0.0"], ["s", 1], ["y", "f"], ["l", [["i"]]], ["d", [[["l", []], ["n"]]]],
        ["S", [["l", []]]], ["q", []], "s", [], ["n", 1], ["s", "a", "b"],
    ],
)  # fmt: skip
def test_decode_rejects_anything_encode_cannot_write(wire: object) -> None:
    with pytest.raises(WireError):
        decode(wire)


def test_non_plain_values_are_opaque() -> None:
    class Int(int):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = int.__hash__

    deep: list[Any] = []
    deep.append(deep)
    assert encode(Int(3)) == ["u", "Int"]
    opaque = decode(encode([Int(3)]))
    assert isinstance(opaque, list) and isinstance(opaque[0], Opaque)
    for use in (lambda o: o == 3, lambda o: o != 3, bool):
        with pytest.raises(TypeError):
            use(opaque[0])
    assert canonical(decode(encode(deep))).count("[") == MAX_DEPTH
    assert canonical(Opaque("x y")) == "<unrepresentable x y>"
    assert canonical(decode(["u", "x y"])) == "<unrepresentable object>"  # names are cleaned
