"""repair: the contract, repair rounds, selection, budget, prompts and hidden tests.

The programs run in the real sandbox; the model is a ``ScriptedClient``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import Any

import pytest

from archon.compiler import compile_source
from archon.eval import Dataset, EvalConfig, EvalItem, evaluate
from archon.ir import Budget
from archon.layers.base import Flow
from archon.layers.repair import (
    FIELD_CHARS,
    PROGRAM_CHARS,
    TRACE_MARK,
    Repair,
    RepairParams,
    clip,
    expected_value,
    parse_program,
    pick,
    plan_checks,
    split_trace,
)
from archon.runtime import Limits, RunResult, run
from archon.runtime.clients.fake import ScriptedClient, prompt_text
from archon.testing import LayerContract
from archon.values import Candidate, Candidates, CompletionRequest, Payload, TestCase, Tests

QUERY = '''def add(a, b):
    """Add two numbers.
    >>> add(1, 2)
    3
    """
'''
GOOD = "def add(a, b):\n    return a + b\n"
MINUS = "def add(a, b):\n    return a - b\n"  # fails add(1, 2) == 3 and add(2, 2) == 4
ZERO = "def add(a, b):\n    return 0\n"  # fails both too: the same behaviour as MINUS
TIMES = "def add(a, b):\n    return a * b\n"  # fails add(1, 2) == 3, passes add(2, 2) == 4
BROKEN = "def add(a, b) return"  # does not load
GIVEN = Tests(items=(TestCase(text="assert add(2, 2) == 4"),))


def fenced(code: str) -> str:
    return f"Here is the fix:\n```python\n{code}```\n"


def is_repair(request: CompletionRequest) -> bool:
    return "Find the bug" in prompt_text(request)


class TestRepairContract(LayerContract):
    layer = Repair
    params = RepairParams(model="fixer", rounds=2, max_candidates=2, timeout_s=3.0)
    script = ((r"Find the bug", fenced(GOOD)),)
    query = QUERY

    def make_inputs(self, n: int) -> Sequence[Payload]:
        programs = (MINUS, GOOD, BROKEN, TIMES)
        candidates = tuple(
            Candidate(text=programs[i % len(programs)], model="small", sample_index=i)
            for i in range(n)
        )
        return (Candidates(items=candidates), GIVEN)


def _run(
    contract: LayerContract,
    programs: Sequence[str],
    client: ScriptedClient,
    *,
    tests: Tests = GIVEN,
    **options: Any,
) -> tuple[tuple[Candidate, ...], RunResult]:
    inputs = (Candidates(items=tuple(Candidate(text=p) for p in programs)), tests)
    result = asyncio.run(
        run(
            contract.pipeline(inputs),
            contract.query,
            client=client,
            registry=contract.registry(),
            limits=Limits(max_concurrency=4, retries=0, timeout_s=30.0),
            **options,
        )
    )
    assert isinstance(result.output, Candidates)
    return result.output.items, result


def _contract(**params: Any) -> TestRepairContract:
    contract = TestRepairContract()
    contract.params = RepairParams(**{"model": "fixer", "timeout_s": 3.0, **params})  # type: ignore[misc]
    return contract


def _user_prompts(client: ScriptedClient) -> list[str]:
    return [request.messages[-1].content for request in client.requests]


def _prompt_of(client: ScriptedClient, program: str) -> str:
    """The one user prompt that shows ``program`` (concurrent calls may arrive in any order)."""
    (prompt,) = [p for p in _user_prompts(client) if program.strip() in p]
    return prompt


# ------------------------------------------------------------------------ repair rounds


def test_a_failing_program_is_fixed_in_round_one_and_kept_with_its_lineage() -> None:
    client = ScriptedClient([(is_repair, fenced(GOOD))])
    items, result = _run(_contract(), [MINUS], client)
    assert client.calls == 1 and client.requests[0].model == "fixer"
    fixed, original = items
    assert GOOD.strip() in fixed.text and original.text == MINUS
    assert fixed.source_node == "under_test" and fixed.model == "fixer"
    assert fixed.signal("repair_of") == 0.0 and fixed.signal("repair_round") == 1.0
    assert fixed.signal("tests_passed") == 1.0
    assert original.signal("tests_passed") == 0.0
    assert result.warnings == ()


def test_passing_inputs_come_first_then_passing_repairs_then_the_rest() -> None:
    client = ScriptedClient([(r"a \* b", fenced(GOOD)), (is_repair, fenced(ZERO + "\n"))])
    items, _ = _run(_contract(), [MINUS, GOOD, TIMES], client)
    assert client.calls == 2
    assert items[0].text == GOOD  # a passing input
    assert items[1].signal("repair_of") == 2.0  # TIMES repaired: passes
    # the rest by tests passed: TIMES (1/2) before MINUS (0) and MINUS's failed repair (0)
    assert [c.text for c in items[2:4]] == [TIMES, MINUS]
    assert items[4].signal("repair_of") == 0.0 and items[4].signal("tests_passed") == 0.0


def test_a_program_that_stays_wrong_gets_exactly_rounds_repairs() -> None:
    counter = itertools.count(1)

    def still_wrong(request: CompletionRequest) -> str:
        return fenced(f"def add(a, b):\n    return a - b - {next(counter)}\n")

    client = ScriptedClient([(is_repair, still_wrong)])
    items, _ = _run(_contract(rounds=3), [MINUS], client)
    assert client.calls == 3
    repaired = [c for c in items if c.signal("repair_of") is not None]
    assert sorted(c.signal("repair_round") or 0.0 for c in repaired) == [1.0, 2.0, 3.0]
    # each round repairs the previous round's program, with its new failure
    prompts = _user_prompts(client)
    assert "return a - b - 1" in prompts[1] and "return a - b - 2" in prompts[2]
    assert "add(1, 2) returned -2" in prompts[1]


def test_a_repaired_program_that_passes_is_not_repaired_again() -> None:
    client = ScriptedClient([(is_repair, fenced(GOOD))])
    items, _ = _run(_contract(rounds=3), [MINUS], client)
    assert client.calls == 1 and len(items) == 2


def test_nothing_is_repaired_when_everything_passes() -> None:
    client = ScriptedClient([(None, fenced(MINUS))])
    items, result = _run(_contract(), [GOOD, fenced(GOOD)], client)
    assert client.calls == 0
    assert [c.text for c in items] == [GOOD, fenced(GOOD)]
    assert [c.signal("tests_passed") for c in items] == [1.0, 1.0]
    assert result.warnings == ()


def test_max_candidates_takes_one_per_behaviour_group_largest_first() -> None:
    client = ScriptedClient([(is_repair, fenced(GOOD))])
    _, _ = _run(_contract(max_candidates=2), [TIMES, MINUS, ZERO, BROKEN, MINUS], client)
    assert client.calls == 2
    # MINUS, ZERO and MINUS fail alike (the largest group); then TIMES comes before BROKEN
    assert _prompt_of(client, MINUS) and _prompt_of(client, TIMES)


def test_the_call_budget_caps_the_repairs_and_is_never_exceeded() -> None:
    client = ScriptedClient([(is_repair, fenced(ZERO))])
    programs = [TIMES, MINUS, BROKEN]
    items, result = _run(
        _contract(max_candidates=None, rounds=3), programs, client, budget=Budget(calls=2)
    )
    assert client.calls == 2
    assert any("call budget allows" in w for w in result.warnings)
    assert len(items) == 3 + 2


def test_include_original_false_drops_the_failing_inputs() -> None:
    client = ScriptedClient([(is_repair, fenced(GOOD))])
    items, _ = _run(_contract(include_original=False), [GOOD, MINUS], client)
    assert [c.text for c in items] == [GOOD, f"```python\n{GOOD.strip()}\n```"]


def test_an_unparsable_reply_adds_nothing_and_warns() -> None:
    client = ScriptedClient([(is_repair, "I cannot help with that.")])
    items, result = _run(_contract(rounds=2), [MINUS], client)
    assert client.calls == 1 and [c.text for c in items] == [MINUS]
    assert any("held no program" in w for w in result.warnings)


# ------------------------------------------------------------------------ the prompt


def test_the_prompt_shows_the_failing_test_and_what_the_calls_returned() -> None:
    client = ScriptedClient([(is_repair, fenced(GOOD))])
    _run(_contract(), [MINUS], client, tests=Tests())
    (prompt,) = _user_prompts(client)
    assert QUERY.strip() in prompt and MINUS.strip() in prompt
    assert "assert add(1, 2) == 3" in prompt
    assert "Expected: 3" in prompt and "add(1, 2) returned -1" in prompt


def test_the_prompt_shows_an_error_and_a_load_traceback() -> None:
    client = ScriptedClient([(is_repair, fenced(GOOD))])
    raising = "def add(a, b):\n    return a + c\n"
    not_loading = "import math\nx = 1 / 0\ndef add(a, b):\n    return a + b\n"
    _run(_contract(), [raising, not_loading], client)
    first, second = _prompt_of(client, raising), _prompt_of(client, not_loading)
    assert "NameError: name 'c' is not defined" in first
    assert "It does not load" in second and "ZeroDivisionError" in second
    assert 'File "<program>", line 2' in second and "x = 1 / 0" in second


STDIN_QUERY = """Print the sum of the numbers on the second line.

Input

3
1 2 3

Output

6
"""


class StdinContract(TestRepairContract):
    params = RepairParams(model="fixer", max_candidates=None, timeout_s=3.0)
    query = STDIN_QUERY


def test_stdin_programs_show_the_input_expected_and_actual_output_bounded() -> None:
    noisy = "input()\nprint('x' * 5000)\nprint(sum(map(int, input().split())) + 1)\n"
    crash = "n = int(input())\nprint(10 // (n - 3))\n"
    long_program = "# " + "y" * (2 * PROGRAM_CHARS) + "\ninput()\nprint(0)\n"
    client = ScriptedClient(
        [(is_repair, fenced("input()\nprint(sum(map(int, input().split())))\n"))]
    )
    items, _ = _run(StdinContract(), [noisy, crash, long_program], client, tests=Tests())
    wrong, error = _prompt_of(client, noisy), _prompt_of(client, crash)
    long = _prompt_of(client, long_program[-100:])
    assert "It fails on this input:\n```\n3\n1 2 3\n```" in wrong
    assert "Expected output:\n```\n6\n```" in wrong
    assert "characters cut" in wrong and "x" * FIELD_CHARS not in wrong
    assert "x\n7\n```" in wrong  # the end of the output is kept too
    assert len(wrong) < len(STDIN_QUERY) + len(noisy) + FIELD_CHARS + 1000
    assert "ZeroDivisionError: integer division or modulo by zero" in error
    assert "line 2, in <module>" in error
    assert "characters cut" in long and len(long) < PROGRAM_CHARS + 2000
    assert sum(c.signal("tests_passed") == 1.0 for c in items) == 3


def test_custom_prompts_get_the_parts_of_the_feedback() -> None:
    prompt = "FIX {program} INPUT {input} EXPECTED {expected} ACTUAL {actual}"
    contract = _contract(prompt=prompt, system_prompt="SYS")
    client = ScriptedClient([(r"^SYS", fenced(GOOD))])
    _run(contract, [MINUS], client, tests=Tests())
    request = client.requests[0]
    assert request.messages[0].content == "SYS"
    assert request.messages[1].content == (
        f"FIX {MINUS.strip()} INPUT assert add(1, 2) == 3 EXPECTED 3 ACTUAL add(1, 2) returned -1"
    )


# ------------------------------------------------------------------------ without tests

MATH = "What is 6 times 7? Write a Python program that prints the answer."


class MathContract(StdinContract):
    query = MATH


def test_without_tests_a_crashing_script_is_repaired_from_its_traceback() -> None:
    crash = "```python\nx = 6 * 7\nprint(y)\n```"
    silent = "answer = 6 * 7\n"
    client = ScriptedClient([(is_repair, fenced("print(6 * 7)\n"))])
    items, _ = _run(MathContract(), ["print(42)", crash, silent], client, tests=Tests())
    crashed, quiet = _prompt_of(client, "print(y)"), _prompt_of(client, silent)
    assert "Running it fails" in crashed
    assert 'File "<program>", line 2, in <module>' in crashed
    assert "NameError: name 'y' is not defined" in crashed
    assert "printed nothing" in quiet
    assert [c.text for c in items[:1]] == ["print(42)"]
    assert all(c.signal("executed") == 1.0 for c in items[1:3])
    assert [c.signal("repair_of") for c in items[1:3]] == [1.0, 2.0]


def test_without_tests_a_function_task_repairs_only_programs_that_lack_it() -> None:
    query = "Write a function that adds two numbers.\n\ndef add(a, b):\n    ...\n"
    contract = _contract()
    contract.query = query  # type: ignore[misc]
    client = ScriptedClient([(is_repair, fenced(GOOD))])
    items, _ = _run(contract, [MINUS, "def plus(a, b):\n    return a + b\n"], client, tests=Tests())
    (prompt,) = _user_prompts(client)
    assert "does not define the function `add`" in prompt
    assert items[0].text == MINUS and items[1].signal("repair_of") == 1.0


# ------------------------------------------------------------------------ hidden tests

HIDDEN_MARK = "hidden-marker-Zq81x"


def test_the_repair_prompt_never_contains_a_hidden_test() -> None:
    hidden = f"assert add(40, 2) == 42  # {HIDDEN_MARK}\nassert add(-1, 1) == 0\n"
    dataset = Dataset(
        name="hidden",
        items=(EvalItem(id="h1", turns=(QUERY,), tests=(hidden,), entry_point="add"),),
        metric="code",
    )
    pipeline = compile_source(
        'models { m = "fake/m" }\npipeline p {\n'
        "  gen = generate(models = [m], samples = 2, temperature = 0.7, max_tokens = 128)\n"
        "  tests = query_tests()\n"
        "  fixed = repair(model = m) <- gen, tests\n}\n"
    )
    client = ScriptedClient([(is_repair, fenced(GOOD)), (None, fenced(MINUS))])
    result = asyncio.run(evaluate(pipeline, dataset, EvalConfig.of(client=client)))
    repairs = [r for r in client.requests if is_repair(r)]
    assert repairs, "the repair node made no call"
    assert all(HIDDEN_MARK not in prompt_text(r) for r in client.requests)
    assert all("add(40, 2)" not in prompt_text(r) for r in repairs)
    assert result.records[0].correct is True


# ------------------------------------------------------------------------ pure parts


def test_pick_groups_by_behaviour() -> None:
    a, b, c = ("failed",), ("error",), ("timeout",)
    assert pick([a, None, b, b, c, a, b], None) == [2, 0, 4]
    assert pick([a, None, b, b, c, a, b], 2) == [2, 0]
    assert pick([None, None], 3) == []


def test_clip_keeps_the_head_or_the_tail() -> None:
    assert clip("abc", 3) == "abc"
    assert clip("abcdef", 4) == "ab\n[... 2 characters cut ...]\nef"
    assert clip("abcdef", 3, tail=True) == "[... 3 characters cut ...]\ndef"


def test_parse_program() -> None:
    assert parse_program(fenced(GOOD)) == GOOD.strip("\n")
    assert parse_program(GOOD) == GOOD.strip()
    assert parse_program("I fixed it.") is None
    assert parse_program("\x00}}]] ???") is None
    assert parse_program("```python\n\n```") is None


def test_expected_value_and_split_trace() -> None:
    assert expected_value("assert add(1, 2) == [3]") == "[3]"
    assert expected_value("assert add(1, 2)") == ""
    assert expected_value("assert (") == ""
    assert split_trace(f"out\n{TRACE_MARK}Traceback") == ("out\n", "Traceback")
    assert split_trace("plain") == ("plain", "")


def test_plan_uses_query_and_given_tests_and_ignores_natural_checks() -> None:
    natural = TestCase(text="It adds.", kind="natural")
    again = TestCase(text="assert add(1, 2) == 3")  # the query's own, given again
    given = Tests(items=(TestCase(text="assert add(2, 2) == 4"), natural, again))
    plan = plan_checks(QUERY, [Candidates(), given])
    assert plan.mode == "tests" and plan.signal == "tests_passed"
    assert [t.text for t in plan.tests] == ["assert add(1, 2) == 3", "assert add(2, 2) == 4"]
    assert plan_checks(STDIN_QUERY, []).mode == "io"
    assert plan_checks(MATH, [Tests(items=(natural,))]).mode == "script"
    assert plan_checks("Implement:\ndef add(a, b):\n    pass\n", []).mode == "load"


def test_estimate() -> None:
    params = RepairParams(model="big", rounds=2, max_candidates=3)
    typed = [Flow(5, 50, Candidates), Flow(2, 10, Tests)]
    estimate = Repair.estimate(params, 100, typed)
    assert [(c.model, c.calls) for c in estimate.calls] == [("big", 6)]
    assert estimate.output.items == 5 + 6
    several = [Flow(1, 50, Candidates), Flow(8, 50, Candidates), Flow(2, 10, Tests)]
    assert Repair.estimate(params, 100, several).output.items == 9 + 6
    assert Repair.estimate(params, 100, [Flow(1, 50)]).calls[0].calls == 2
    assert Repair.estimate(params, 100, [Flow(0, 0)]).calls == ()
    everything = RepairParams(model="big", max_candidates=None)
    assert Repair.estimate(everything, 100, [Flow(7, 50)]).calls[0].calls == 7


def test_rounds_are_bounded() -> None:
    with pytest.raises(ValueError):
        RepairParams(model="m", rounds=6)
    with pytest.raises(ValueError):
        RepairParams(model="m", rounds=0)
