"""Verdicts as the reference harness (candidate code, then the tests, in one plain Python
program) gives them: every value a test can state crosses to the candidate, the candidate's
code compiles without the runner's ``__future__`` flags, and a function named like a builtin
is the candidate's."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from fractions import Fraction

import pytest

from archon.sandbox import Sandbox, confine, run_calls, run_tests
from archon.sandbox._wire import WireError, canonical, decode, encode

MODES = ["namespace", "audit-hook"] if confine.bubblewrap() else ["audit-hook"]

IDENTITY = "def echo(*args, **kwargs):\n    return args if not kwargs else (args, kwargs)\n"

# Each is a literal a test can state, checked by a round trip through the candidate.
VALUES = [
    "1j",
    "complex(float('inf'), -0.0)",
    "frozenset({1, frozenset({2})})",
    "{frozenset({1}): {2, 3}}",
    "b'\\x00ab'",
    "bytearray(b'xy')",
    "Decimal('1.50')",
    "Decimal('-Infinity')",
    "Fraction(-6, 4)",
    "(None, True, 10 ** 100, -(2 ** 70), float('inf'), 's', [{1: (2, [3j])}])",
]

WIRE_VALUES: list[object] = [
    3 - 4j,
    complex(0.1, float("nan")),
    frozenset(),
    frozenset({(1, 2), frozenset({"a"})}),
    bytearray(b"\x00\xff"),
    Decimal("0.1000"),
    Decimal("NaN"),
    Decimal("-0E+3"),
    Fraction(22, 7),
    Fraction(-3),
    {1j: [Fraction(1, 2), Decimal("2")]},
]


@pytest.fixture(params=MODES)
def sandbox(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    if request.param == "audit-hook":
        monkeypatch.setenv(confine.FALLBACK_ENV, "fallback")  # the fallback needs the opt-in
    return Sandbox(isolation=request.param)


def _statuses(code: str, tests: list[str], sandbox: Sandbox | None = None) -> list[str]:
    report = asyncio.run(run_tests(code, tests, timeout_s=5.0, sandbox=sandbox))
    return [outcome.status for outcome in report.outcomes]


# --- every value a test can state crosses -----------------------------------------------------


def test_a_complex_argument_reaches_the_candidate(sandbox: Sandbox) -> None:
    code = "import cmath\ndef angle_complex(a, b):\n    return cmath.phase(a + b)\n"
    tests = ["assert angle_complex(0, 1j) == 1.5707963267948966"]
    assert _statuses(code, tests, sandbox) == ["passed"]


def test_values_of_every_plain_type_cross_both_ways() -> None:
    setup = "from decimal import Decimal\nfrom fractions import Fraction\n"
    tests = [
        f"{setup}value = {v}\nresult = echo(value)\n"
        "assert repr(result) == repr((value,)) and type(result[0]) is type(value), result"
        for v in VALUES
    ]
    tests.append(f"{setup}assert echo(x=Fraction(1, 3)) == ((), {{'x': Fraction(1, 3)}})")
    assert _statuses(IDENTITY, tests) == ["passed"] * len(tests)


def test_a_bytearray_argument_is_written_back() -> None:
    code = "def fill(buffer):\n    buffer[:] = b'done'\n"
    tests = ["b = bytearray(b'x')\nfill(b)\nassert b == bytearray(b'done')"]
    assert _statuses(code, tests) == ["passed"]


@pytest.mark.parametrize("value", WIRE_VALUES, ids=repr)
def test_the_codec_round_trips_the_new_values(value: object) -> None:
    back = decode(encode(value))
    assert type(back) is type(value)
    assert canonical(back) == canonical(value)
    assert repr(back) == repr(value)


@pytest.mark.parametrize(
    "wire",
    [
        ["c", ["1.0"]],
        ["c", ["1.00", "0.0"]],
        ["D", "1.5e0"],
        ["D", "not a number"],
        ["D", 1],
        ["Q", ["2", "4"]],  # not in lowest terms
        ["Q", ["1", "0"]],
        ["Q", ["1", "-2"]],
        ["Y", "abc"],
        ["F", [["l", []]]],  # unhashable item
    ],
)
def test_the_codec_refuses_non_canonical_forms(wire: list[object]) -> None:
    with pytest.raises(WireError):
        decode(wire)


def test_run_calls_gives_the_canonical_text_of_the_new_values() -> None:
    code = "from decimal import Decimal\nfrom fractions import Fraction\n"
    exprs = ["1j + 2", "frozenset({2, 1})", "bytearray(b'a')", "Decimal('1.0')", "Fraction(2, 4)"]
    report = asyncio.run(run_calls(code, exprs))
    assert [o.value for o in report.outcomes] == [
        "(2+1j)",
        "frozenset({1, 2})",
        "bytearray(b'a')",
        "Decimal('1.0')",
        "Fraction(1, 2)",
    ]


def test_a_value_that_cannot_cross_is_a_harness_error_not_a_verdict(sandbox: Sandbox) -> None:
    code = "def apply(f, x):\n    return f(x)\n"
    tests = [
        "assert apply(lambda v: v + 1, 1) == 2",
        # The test's own ``except Exception`` cannot turn it into a pass.
        "class Box:\n    pass\ntry:\n    apply(Box(), 1)\nexcept Exception:\n    pass\n",
    ]
    report = asyncio.run(run_tests(code, tests, sandbox=sandbox))
    assert [o.status for o in report.outcomes] == ["error", "error"]
    assert all(o.harness_error for o in report.outcomes)
    assert "harness error" in report.outcomes[0].message
    assert "function" in report.outcomes[0].message and "Box" in report.outcomes[1].message


def test_a_candidate_error_is_never_a_harness_error() -> None:
    code = "def f(x):\n    raise ValueError('harness error: forged')\n"
    report = asyncio.run(run_tests(code, ["f(1)", "assert False, 'harness error: x'"]))
    assert [o.harness_error for o in report.outcomes] == [False, False]


# --- no __future__ flags reach the candidate ------------------------------------------------


def test_annotations_of_the_candidate_are_evaluated(sandbox: Sandbox) -> None:
    code = (
        "def check_triplet(A: List[int], n: int, sum: int, count: int) -> bool:\n    return True\n"
    )
    report = asyncio.run(
        run_tests(code, ["assert check_triplet([1, 2], 2, 3, 0)"], sandbox=sandbox)
    )
    assert report.setup.status == "error" and "NameError" in report.setup.message
    assert [o.status for o in report.outcomes] == ["error"]


def test_annotations_in_tests_and_calls_are_evaluated() -> None:
    code = "def f(x):\n    return x\n"
    assert _statuses(code, ["def g(x: Undefined) -> None:\n    pass\n"]) == ["error"]
    report = asyncio.run(run_calls(code, ["f(1)"]))
    assert report.outcomes[0].value == "1"
    broken = asyncio.run(run_calls("x: Undefined = 1\n", ["x"]))
    assert broken.outcomes[0].status == "error" and broken.outcomes[0].error == "NameError"


# --- a function named like a builtin is the candidate's ---------------------------------------


def test_a_function_named_like_a_builtin_is_the_candidates(sandbox: Sandbox) -> None:
    code = "def sum(a, b):\n    return a - b\n"
    assert _statuses(code, ["assert sum(10, 15) == -5"], sandbox) == ["passed"]
    wrong = "def sum(a, b):\n    return a + b\n"
    assert _statuses(wrong, ["assert sum(10, 15) == -5"], sandbox) == ["failed"]


def test_a_name_the_test_defines_wins_over_the_candidates() -> None:
    code = "def max(a, b):\n    return 0\ndef helper():\n    return 7\n"
    tests = [
        "assert max(2, 3) == 0 and helper() == 7",
        "def helper():\n    return 1\nassert helper() == 1",
        "import builtins\nmax = builtins.max\nassert max(2, 3) == 3",
    ]
    assert _statuses(code, tests) == ["passed"] * 3
