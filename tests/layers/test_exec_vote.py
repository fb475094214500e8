"""exec_vote: the contract, agreement on known output tables, inputs, modes and fallbacks.

Most tests replace the sandbox's ``run_calls``/``run_stdio`` by the in-process stand-in of
``archon.testing`` (the programs here are the tests' own), so grouping and ranking are
checked without subprocesses; ``run_tests`` stays real. The tests at the end use the real
sandbox when it has ``run_calls``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from archon import sandbox
from archon.layers.exec_vote import (
    ExecVote,
    ExecVoteParams,
    agree,
    group_behaviours,
    normalise_output,
    outcome_key,
    parse_call_inputs,
    parse_stdin_inputs,
)
from archon.runtime.clients.fake import ScriptedClient
from archon.testing import LayerContract
from archon.testing import sandbox_stand_in as stand_in
from archon.testing.sandbox_stand_in import StandInReport, use_stand_in
from archon.values import Candidate, Candidates, Payload, TestCase, Tests

QUERY = '''def add(a, b):
    """Add two numbers.
    >>> add(1, 2)
    3
    """
'''
SOLUTIONS = (
    "def add(a, b):\n    return a + b\n",
    "def add(a, b):\n    return a - b\n",
    "Sure:\n```python\ndef add(a, b):\n    return b + a\n```\n",
    "def add(a, b) return",  # does not load
)
MODEL_TESTS = ("assert add(2, 2) == 4", "assert add(0, 0) == 0")
INPUTS_REPLY = "```python\nadd(5, 7)\nadd(-1, 1)\n```"


@pytest.fixture(autouse=True)
def stand_in_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    use_stand_in(monkeypatch)


class TestExecVoteContract(LayerContract):
    layer = ExecVote
    params = ExecVoteParams(model="small", num_inputs=3, timeout_s=2.0)
    script = ((r"test inputs", INPUTS_REPLY),)
    query = QUERY

    def make_inputs(self, n: int) -> Sequence[Payload]:
        candidates = tuple(
            Candidate(text=SOLUTIONS[i % len(SOLUTIONS)], sample_index=i) for i in range(n)
        )
        return (
            Candidates(items=candidates),
            Tests(items=tuple(TestCase(text=t) for t in MODEL_TESTS)),
        )


def _run(
    contract: LayerContract, n: int, client: ScriptedClient | None = None
) -> tuple[tuple[Candidate, ...], tuple[str, ...], ScriptedClient]:
    client = client or contract.make_client()
    result = contract.run_sync(n, client)
    assert isinstance(result.output, Candidates)
    return result.output.items, result.warnings, client


# ------------------------------------------------------------ agreement on known tables

OK1, OK2, VALUE_ERROR, TYPE_ERROR = (
    ("ok", "1"),
    ("ok", "2"),
    ("error", "ValueError"),
    (
        "error",
        "TypeError",
    ),
)


def test_groups_identical_behaviour_vectors_in_first_appearance_order() -> None:
    table = [[OK1, VALUE_ERROR], [OK2, OK1], [OK1, VALUE_ERROR], [OK1, TYPE_ERROR]]
    assert group_behaviours(table) == [[0, 2], [1], [3]]


def test_largest_group_first_ties_by_first_member() -> None:
    table = [[OK2], [OK1], [OK1], [OK2], [("ok", "3")]]
    result = agree(table)
    assert result.order == (0, 3, 1, 2, 4)  # two groups of two: the one seen first wins
    assert result.shares == (0.4, 0.4, 0.4, 0.4, 0.2)
    assert result.scores == result.shares


def test_programs_that_never_return_rank_last_and_share_nothing() -> None:
    crash = [VALUE_ERROR, VALUE_ERROR]
    table = [crash, crash, crash, [OK1, OK2]]
    result = agree(table)
    assert result.order == (3, 0, 1, 2)
    assert result.shares == (0.0, 0.0, 0.0, 0.25)


def test_the_same_exception_is_the_same_behaviour() -> None:
    table = [[OK1, VALUE_ERROR], [OK1, VALUE_ERROR], [OK1, OK2], [OK1, TYPE_ERROR]]
    assert agree(table).order[:2] == (0, 1)


def test_dual_agreement_weights_groups_by_tests_passed() -> None:
    table = [[OK1], [OK1], [OK1], [OK2]]
    # three agree but pass no test; the lone program passes two: 3 x 0 < 1 x 2
    result = agree(table, passed=[0, 0, 0, 2])
    assert result.order == (3, 0, 1, 2)
    assert result.scores == (0.0, 0.0, 0.0, 0.25)  # |G| p(G) / (n max p)
    # 2 x 1 = 1 x 2: the larger group wins the tie
    assert agree([[OK1], [OK1], [OK2]], passed=[1, 1, 2]).order == (0, 1, 2)


def test_outcome_keys_and_output_normalisation() -> None:
    assert outcome_key("ok", "3 \n\n", None) == ("ok", "3")
    assert outcome_key("error", None, "ZeroDivisionError") == ("error", "ZeroDivisionError")
    assert outcome_key("timeout", None, None) == ("timeout", "")
    assert normalise_output("1  2\r\n3\n\n") == "1 2\n3"


# ------------------------------------------------------------------------ behaviour


def test_ranks_the_agreeing_correct_programs_first_with_signals() -> None:
    items, warnings, client = _run(TestExecVoteContract(), 4)
    assert client.calls == 1
    assert [c.text for c in items] == [SOLUTIONS[0], SOLUTIONS[2], SOLUTIONS[1], SOLUTIONS[3]]
    assert [c.signal("exec_agreement") for c in items] == [0.5, 0.5, 0.25, 0.0]
    # three tests: the query's doctest and the two given; a - b passes add(0, 0) == 0 only
    assert [c.signal("tests_passed") for c in items] == [1.0, 1.0, pytest.approx(1 / 3), 0.0]
    assert items[0].score == 0.5
    assert not [w for w in warnings if "under_test" in w]


def test_inputs_come_from_query_tests_and_model() -> None:
    seen: list[tuple[str, ...]] = []

    async def spy(code: str, calls: Sequence[str], **limits: object) -> StandInReport:
        seen.append(tuple(calls))
        return await stand_in.run_calls(code, calls)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sandbox, "run_calls", spy, raising=False)
        _, _, client = _run(TestExecVoteContract(), 2)
    assert seen[0] == ("add(1, 2)", "add(2, 2)", "add(0, 0)", "add(5, 7)", "add(-1, 1)")
    prompt = client.requests[0].messages[-1].content
    assert "`add`" in prompt and "`add(1, 2)`" in prompt and "Write 3 different" in prompt


def test_the_model_is_not_asked_for_a_single_candidate() -> None:
    items, _, client = _run(TestExecVoteContract(), 1)
    assert client.calls == 0 and items[0].signal("exec_agreement") == 1.0


def test_max_inputs_and_top_k() -> None:
    contract = TestExecVoteContract()
    contract.params = ExecVoteParams(model="small", max_inputs=1, top_k=2, dual=False)  # type: ignore[misc]
    items, _, _ = _run(contract, 4)
    # on add(1, 2) alone, a - b (-1) differs; b + a and a + b agree
    assert [c.text for c in items] == [SOLUTIONS[0], SOLUTIONS[2]]
    assert items[0].score == 0.5


def test_garbage_inputs_from_the_model_leave_the_stated_ones() -> None:
    client = ScriptedClient([(None, "I would test it with some numbers.")])
    items, warnings, _ = _run(TestExecVoteContract(), 4, client)
    assert items[0].text == SOLUTIONS[0]
    assert any("no calls inputs could be parsed" in w for w in warnings)


class NoInputs(TestExecVoteContract):
    params = ExecVoteParams(timeout_s=2.0)
    query = "Write a function that adds two numbers."

    def make_inputs(self, n: int) -> Sequence[Payload]:
        candidates, _ = super().make_inputs(n)
        return (candidates, Tests())


def test_no_inputs_keeps_the_input_order_without_signals() -> None:
    items, warnings, _ = _run(NoInputs(), 4)
    assert [c.text for c in items] == [SOLUTIONS[i] for i in range(4)]
    assert all(c.signals == () and c.score is None for c in items)
    assert any("no inputs" in w and "kept the input order" in w for w in warnings)


class NothingLoads(TestExecVoteContract):
    params = ExecVoteParams(timeout_s=2.0)

    def make_inputs(self, n: int) -> Sequence[Payload]:
        broken = tuple(Candidate(text=f"def add(a, b) return {i}") for i in range(n))
        return (Candidates(items=broken), Tests())


def test_nothing_executes_keeps_the_input_order_without_signals() -> None:
    items, warnings, _ = _run(NothingLoads(), 3)
    assert [c.text for c in items] == [f"def add(a, b) return {i}" for i in range(3)]
    assert all(c.signals == () for c in items)
    assert any("no candidate ran" in w for w in warnings)


# ---------------------------------------------------------------------- stdin programs

STDIN_QUERY = """Print the sum of the numbers.

Examples

Input

3
1 2 3

Output

6
"""
PROGRAMS = (
    "n = int(input())\nprint(sum(map(int, input().split())))\n",
    "input()\nprint(eval('*'.join(input().split())))\n",  # the product: 6 as well on 1 2 3
    "n = int(input())\nxs = [int(x) for x in input().split()]\nprint(sum(xs))\n",
)


class StdinPrograms(TestExecVoteContract):
    params = ExecVoteParams(model="small", timeout_s=2.0)
    script = ((r"standard input", "```\n2\n2 5\n```\n```text\n1\n4\n```\nnot an input"),)
    query = STDIN_QUERY

    def make_inputs(self, n: int) -> Sequence[Payload]:
        candidates = tuple(Candidate(text=PROGRAMS[i % len(PROGRAMS)]) for i in range(n))
        return (Candidates(items=candidates), Tests())


def test_stdin_programs_are_grouped_by_their_output() -> None:
    items, _, client = _run(StdinPrograms(), 3)
    assert "standard input" in client.requests[0].messages[-1].content
    # the stated example cannot tell sum from product; the model's inputs can
    assert [c.text for c in items] == [PROGRAMS[0], PROGRAMS[2], PROGRAMS[1]]
    assert [c.signal("exec_agreement") for c in items] == [
        pytest.approx(2 / 3),
        pytest.approx(2 / 3),
        pytest.approx(1 / 3),
    ]
    assert [c.signal("tests_passed") for c in items] == [1.0, 1.0, 1.0]


# ------------------------------------------------------------------ parsing model inputs


def test_parse_call_inputs() -> None:
    reply = "1. add(1, 2)\n- add(3, 4)  # edge\n>>> add(1, 2)\nassert add(0, 0) == 0\n"
    reply += "sub(1, 2)\nadd(x, 1)"
    assert parse_call_inputs(reply, "add") == ["add(1, 2)", "add(3, 4)", "add(0, 0)"]
    assert parse_call_inputs(reply, None)[-1] == "sub(1, 2)"
    assert parse_call_inputs("\x00}}]] ???", "add") == []


def test_parse_stdin_inputs() -> None:
    reply = "```\n1 2\n```\ntext\n```txt\n3\n4\n```\n```\n\n```"
    assert parse_stdin_inputs(reply) == ["1 2\n", "3\n4\n"]
    assert parse_stdin_inputs("no blocks") == []


def test_estimate_counts_the_input_writer_only() -> None:
    from archon.layers.base import Flow

    with_model = ExecVote.estimate(ExecVoteParams(model="small", top_k=2), 100, [Flow(5, 50)])
    assert [(c.model, c.calls) for c in with_model.calls] == [("small", 1)]
    assert with_model.output == Flow(2, 50)
    assert ExecVote.estimate(ExecVoteParams(), 100, [Flow(5, 50)]).calls == ()


# ------------------------------------------------------------------ the real sandbox


@pytest.fixture
def real_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # drop the stand-ins of the autouse fixture
    if not hasattr(sandbox, "run_calls") or not hasattr(sandbox, "run_stdio"):
        pytest.skip("the sandbox has no run_calls/run_stdio yet")


@pytest.mark.usefixtures("real_sandbox")
def test_real_sandbox_groups_known_programs() -> None:
    items, _, _ = _run(TestExecVoteContract(), 4)
    assert [c.text for c in items] == [SOLUTIONS[0], SOLUTIONS[2], SOLUTIONS[1], SOLUTIONS[3]]
    assert [c.signal("exec_agreement") for c in items] == [0.5, 0.5, 0.25, 0.0]


@pytest.mark.usefixtures("real_sandbox")
def test_real_sandbox_runs_stdin_programs() -> None:
    items, _, _ = _run(StdinPrograms(), 3)
    assert [c.text for c in items] == [PROGRAMS[0], PROGRAMS[2], PROGRAMS[1]]


def test_the_stand_in_matches_the_real_report_shape() -> None:
    report = asyncio.run(stand_in.run_calls("def f():\n    return 1\n", ["f()", "g()"]))
    assert [(o.status, o.value, o.error) for o in report.outcomes] == [
        ("ok", "1", None),
        ("error", None, "NameError"),
    ]
