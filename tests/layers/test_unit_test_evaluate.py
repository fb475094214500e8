"""unit_test_evaluate: the contract, plus ranking by tests passed with real sandboxed runs."""

from __future__ import annotations

from collections.abc import Sequence

from archon.layers.unit_test_evaluate import UnitTestEvaluate, UnitTestEvaluateParams
from archon.runtime.clients.fake import ScriptedClient
from archon.testing import LayerContract
from archon.values import Candidate, Candidates, Payload, TestCase, Tests

SOLUTIONS = (
    "def add(a, b):\n    return a - b\n",  # passes 1 of 3 (add(0, 0))
    "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\n",  # passes 3 of 3
    "def add(a, b):\n    return 0\n",  # passes 1 of 3
    "def add(a, b) return",  # syntax error: passes none
)
CODE_TESTS = ("assert add(1, 2) == 3", "assert add(0, 0) == 0", "assert add(-1, 5) == 4")


class TestUnitTestEvaluateContract(LayerContract):
    layer = UnitTestEvaluate
    params = UnitTestEvaluateParams(model="judge", top_k=2, timeout_s=2.0)
    script = ((None, "Verdict: Yes"),)

    def make_inputs(self, n: int) -> Sequence[Payload]:
        candidates = tuple(
            Candidate(text=SOLUTIONS[i % len(SOLUTIONS)], sample_index=i) for i in range(n)
        )
        natural = TestCase(text="The answer defines add.", kind="natural")
        tests = (*(TestCase(text=t) for t in CODE_TESTS), natural)
        return (Candidates(items=candidates), Tests(items=tests))


class CodeOnly(TestUnitTestEvaluateContract):
    params = UnitTestEvaluateParams(timeout_s=2.0)

    def make_inputs(self, n: int) -> Sequence[Payload]:
        candidates, tests = super().make_inputs(n)
        assert isinstance(tests, Tests)
        return (candidates, Tests(items=tests.items[:3]))


def test_ranks_by_tests_passed_in_the_sandbox() -> None:
    client = ScriptedClient()
    result = CodeOnly().run_sync(4, client)
    assert client.calls == 0  # code tests never go to a model
    assert isinstance(result.output, Candidates)
    items = result.output.items
    assert items[0].text == SOLUTIONS[1] and items[0].score == 1.0
    # ties keep input order; the syntax error comes last
    assert [c.text for c in items] == [SOLUTIONS[1], SOLUTIONS[0], SOLUTIONS[2], SOLUTIONS[3]]
    assert [round(c.score or 0.0, 3) for c in items] == [1.0, 0.333, 0.333, 0.0]


def test_natural_checks_are_judged_by_the_model() -> None:
    def judge(request: object) -> str:
        text = request.messages[-1].content  # type: ignore[attr-defined]
        return "Verdict: Yes" if "return a + b" in text else "Verdict: No"

    client = ScriptedClient(judge)
    result = TestUnitTestEvaluateContract().run_sync(2, client)
    assert client.calls == 2  # one natural check x two candidates
    assert isinstance(result.output, Candidates)
    assert result.output.items[0].score == 1.0  # 3 code + 1 natural of 4
    assert result.output.items[1].score == 0.25


def test_natural_checks_without_a_model_are_skipped_with_a_warning() -> None:
    contract = TestUnitTestEvaluateContract()
    contract.params = UnitTestEvaluateParams(timeout_s=2.0)  # type: ignore[misc]
    result = contract.run_sync(2, ScriptedClient())
    assert any("no `model`" in w for w in result.warnings)


def test_io_tests_rank_stdin_programs() -> None:
    class IOOnly(TestUnitTestEvaluateContract):
        params = UnitTestEvaluateParams(timeout_s=2.0)

        def make_inputs(self, n: int) -> Sequence[Payload]:
            programs = (
                "print(sum(map(int, input().split())))",  # passes both
                "print(3)",  # passes one
                "import sys\nsys.exit(1)",  # passes none
            )
            candidates = tuple(Candidate(text=programs[i % 3], sample_index=i) for i in range(n))
            io = (
                TestCase(text="1+2", kind="io", stdin="1 2\n", stdout="3\n"),
                TestCase(text="4+5", kind="io", stdin="4 5\n", stdout="9\n"),
                TestCase(text="no expected output: not run", kind="io", stdin="1"),
            )
            return (Candidates(items=candidates), Tests(items=io))

    result = IOOnly().run_sync(3, ScriptedClient())
    assert isinstance(result.output, Candidates)
    assert [c.score for c in result.output.items] == [1.0, 0.5, 0.0]
