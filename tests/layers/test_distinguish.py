"""distinguish: the contract, grouping, the stated examples, the judge and the fallbacks.

Every test runs the candidate programs in the real sandbox (the programs are the tests'
own); the model is a scripted client whose judge computes the right answer itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

from archon.layers.base import Flow
from archon.layers.distinguish import Distinguish, DistinguishParams, parse_verdict
from archon.runtime.clients.fake import ScriptedClient, last_user
from archon.testing import LayerContract
from archon.values import Candidate, Candidates, CompletionRequest, Payload, TestCase, Tests

PLAIN_QUERY = '''def add(a, b):
    """Return the sum of a and b."""
'''
STATED_QUERY = '''def add(a, b):
    """Return the sum of a and b.
    >>> add(2, 3)
    5
    """
'''
RIGHT = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a * b\n"  # agrees with a + b on add(2, 2) and add(0, 0)
RIGHT_TOO = "Here it is:\n```python\ndef add(a, b):\n    return b + a\n```\n"
BROKEN = "def add(a, b) return"
WRITTEN = "```python\nadd(2, 2)\nadd(5, 7)\nadd(0, 0)\nadd(1, 4)\n```"
"""Three inputs are kept (``num_inputs``): a * b differs from a + b on add(5, 7) only."""


def correct_judge(request: CompletionRequest) -> str:
    """A judge that knows addition: it picks the output equal to the input's sum."""
    prompt = last_user(request)
    match = re.search(r"Input:\n(.+)\n", prompt)
    assert match is not None
    expected = repr(eval(match.group(1), {"add": lambda a, b: a + b}))  # the test's own input
    return "Reasoning...\nVerdict: A" if shown_as_a(prompt) == expected else "Verdict: B"


WRITER_RULE = (r"Write \d+ different inputs", WRITTEN)
JUDGE_RULE = (r"Which result is correct", correct_judge)


def candidates(*texts: str) -> Candidates:
    return Candidates(items=tuple(Candidate(text=t, sample_index=i) for i, t in enumerate(texts)))


class TestDistinguishContract(LayerContract):
    layer = Distinguish
    params = DistinguishParams(model="small", timeout_s=2.0)
    script = (WRITER_RULE, JUDGE_RULE)
    query = PLAIN_QUERY

    def make_inputs(self, n: int) -> Sequence[Payload]:
        texts = (WRONG, RIGHT, RIGHT_TOO, BROKEN)
        return (candidates(*(texts[i % len(texts)] for i in range(n))), Tests())


class Case(TestDistinguishContract):
    """One test's inputs: the given candidates (and tests), under a given query and params."""

    def __init__(
        self,
        texts: Sequence[str],
        *,
        query: str = PLAIN_QUERY,
        tests: Sequence[str] = (),
        **params: object,
    ) -> None:
        self.texts = tuple(texts)
        self.tests = tuple(tests)
        self.query = query  # type: ignore[misc]
        self.params = DistinguishParams.model_validate(  # type: ignore[misc]
            {"model": "small", "timeout_s": 2.0, **params}
        )

    def make_inputs(self, n: int) -> Sequence[Payload]:
        given = Tests(items=tuple(TestCase(text=t) for t in self.tests))
        return (candidates(*self.texts), given)

    def outcome(
        self, client: ScriptedClient | None = None
    ) -> tuple[tuple[Candidate, ...], tuple[str, ...], ScriptedClient]:
        client = client or self.make_client()
        result = self.run_sync(len(self.texts), client)
        assert isinstance(result.output, Candidates)
        estimate = Distinguish.estimate(
            Distinguish.validate_params(self.params), 64, [Flow(len(self.texts), 100)]
        )
        assert client.calls <= sum(call.calls for call in estimate.calls)
        return result.output.items, result.warnings, client


def texts_of(items: Sequence[Candidate]) -> list[str]:
    return [c.text for c in items]


def shown_as_a(prompt: str) -> str:
    match = re.search(r"Output A:\n(.*)\n", prompt)
    assert match is not None
    return match.group(1)


def prompts_to(client: ScriptedClient, marker: str) -> list[str]:
    return [last_user(r) for r in client.requests if marker in last_user(r)]


# ------------------------------------------------------------------------ no call


def test_one_behaviour_group_makes_no_call() -> None:
    # a + b and b + a agree on the stated add(2, 3): one group
    items, warnings, client = Case([RIGHT, RIGHT_TOO], query=STATED_QUERY).outcome()
    assert client.calls == 0 and not warnings
    assert texts_of(items) == [RIGHT, RIGHT_TOO]
    assert all(c.signals == () for c in items)


def test_identical_programs_without_shared_inputs_form_one_group() -> None:
    items, _, client = Case([RIGHT, "```python\n" + RIGHT + "```"]).outcome()
    assert client.calls == 0 and all(c.signals == () for c in items)


def test_a_clear_lead_of_margin_makes_no_call() -> None:
    texts = [RIGHT, RIGHT, RIGHT, WRONG]
    _, _, client = Case(texts, margin=2).outcome()
    assert client.calls == 0
    _, _, client = Case(texts, margin=3).outcome()
    assert client.calls > 0  # a lead of 2 < 3: worth asking


def test_a_group_that_never_returns_is_not_worth_a_call() -> None:
    items, _, client = Case([BROKEN, RIGHT], tests=["assert add(1, 1) == 2"]).outcome()
    assert client.calls == 0 and texts_of(items) == [BROKEN, RIGHT]


# ------------------------------------------------------------------ stated examples


def test_the_stated_examples_decide_without_a_call() -> None:
    # a * b is the larger group, but fails the stated add(2, 3) == 5
    texts = [WRONG, WRONG, RIGHT, BROKEN]
    items, warnings, client = Case(texts, query=STATED_QUERY).outcome()
    assert client.calls == 0 and not warnings
    assert texts_of(items) == [RIGHT, WRONG, WRONG, BROKEN]
    assert [c.signal("distinguish_won") for c in items] == [1.0, 0.0, 0.0, None]


def test_the_given_tests_calls_group_the_programs() -> None:
    # add(2, 2) and add(0, 0) cannot tell a * b from a + b: one group, no call
    _, _, client = Case([WRONG, RIGHT], tests=["assert add(2, 2) == 4"]).outcome()
    assert client.calls == 0
    # add(1, 1) can; the given tests are not stated examples, so the judge decides
    items, _, client = Case([WRONG, RIGHT], tests=["assert add(1, 1) == 2"]).outcome()
    assert client.calls == 2 and texts_of(items) == [RIGHT, WRONG]


# ---------------------------------------------------------------------------- judge


def test_the_differing_input_is_found_and_the_judge_decides() -> None:
    items, warnings, client = Case([WRONG, RIGHT, RIGHT_TOO]).outcome()
    writer, *judged = (last_user(r) for r in client.requests)
    assert "Write 3 different inputs" in writer and "`add`" in writer
    assert "return a * b" in writer and "return a + b" in writer
    # of add(2, 2), add(5, 7), add(0, 0) only add(5, 7) tells the programs apart
    assert len(judged) == 1
    assert "add(5, 7)" in judged[0] and "add(2, 2)" not in judged[0]
    assert "\n12\n" in judged[0] and "\n35\n" in judged[0]  # the outputs ...
    assert "return a" not in judged[0] and "a * b" not in judged[0]  # ... never the programs
    assert texts_of(items) == [RIGHT, WRONG, RIGHT_TOO]
    assert [c.signal("distinguish_won") for c in items] == [1.0, 0.0, None]
    assert not warnings


def test_a_separate_judge_model_and_alternating_positions() -> None:
    written = "```python\nadd(5, 7)\nadd(1, 4)\nadd(3, 3)\n```"
    client = ScriptedClient([(r"Write \d+ different inputs", written), JUDGE_RULE])
    items, _, _ = Case([WRONG, RIGHT], judge="big").outcome(client)
    assert [r.model for r in client.requests] == ["small", "big", "big", "big"]
    judged = prompts_to(client, "Which result is correct")
    first_shown = [shown_as_a(p) for p in judged]
    # a * b's output is shown as A, then B, then A (or the other way round)
    wrong_first = [shown in ("35", "4", "9") for shown in first_shown]
    assert wrong_first in ([True, False, True], [False, True, False])
    assert texts_of(items) == [RIGHT, WRONG]


def test_a_judge_that_always_says_a_cannot_decide() -> None:
    written = "```python\nadd(5, 7)\nadd(1, 4)\n```"
    client = ScriptedClient([(r"Write \d+ different inputs", written), (None, "Verdict: A")])
    items, warnings, _ = Case([WRONG, RIGHT]).outcome(client)
    assert client.calls == 3
    assert texts_of(items) == [WRONG, RIGHT]  # one vote each: the order is kept
    assert all(c.signals == () for c in items) and not warnings


def test_upstream_exec_vote_groups_and_order_are_kept() -> None:
    # exec_vote put a * b (2 of 3) before a + b; both pass the stated add(2, 2) == 4
    query = PLAIN_QUERY.replace("b.", "b.\n    >>> add(2, 2)\n    4")
    shares = (2 / 3, 2 / 3, 1 / 3)
    case = Case([WRONG, WRONG, RIGHT], query=query)
    given = tuple(
        Candidate(text=t).with_signal("exec_agreement", s)
        for t, s in zip(case.texts, shares, strict=True)
    )
    case.make_inputs = lambda n: (Candidates(items=given), Tests())  # type: ignore[method-assign]
    items, _, client = case.outcome()
    assert client.calls == 2  # the writer, then the judge on add(5, 7)
    assert texts_of(items) == [RIGHT, WRONG, WRONG]
    assert [c.signal("distinguish_won") for c in items] == [1.0, 0.0, 0.0]
    assert items[0].signal("exec_agreement") == pytest.approx(1 / 3)


# ------------------------------------------------------------------------ fallbacks


def test_a_malformed_writer_reply_keeps_the_order_with_a_warning() -> None:
    client = ScriptedClient([(None, "I would try a few numbers.")])
    items, warnings, _ = Case([WRONG, RIGHT]).outcome(client)
    assert client.calls == 1
    assert texts_of(items) == [WRONG, RIGHT] and all(c.signals == () for c in items)
    assert any("no inputs could be parsed" in w for w in warnings)


def test_inputs_that_tell_nothing_apart_keep_the_order_with_a_warning() -> None:
    client = ScriptedClient([(r"Write \d+ different inputs", "add(2, 2)\nadd(0, 0)")])
    items, warnings, _ = Case([WRONG, RIGHT]).outcome(client)
    assert client.calls == 1 and texts_of(items) == [WRONG, RIGHT]
    assert any("none of the 2 written inputs" in w for w in warnings)


def test_unreadable_verdicts_keep_the_order_with_a_warning() -> None:
    client = ScriptedClient([WRITER_RULE, (None, "Hard to say; both look plausible.")])
    items, warnings, _ = Case([WRONG, RIGHT]).outcome(client)
    assert client.calls == 2 and texts_of(items) == [WRONG, RIGHT]
    assert any("1 of 1 judge replies gave no verdict" in w for w in warnings)


def test_stdin_programs_are_returned_unchanged_with_a_warning() -> None:
    programs = ["print(sum(map(int, input().split())))", "print(0)"]
    items, warnings, client = Case(programs, query="Read two numbers, print their sum.").outcome()
    assert client.calls == 0 and texts_of(items) == programs
    assert any("function tasks only" in w for w in warnings)


# ------------------------------------------------------------------- parts and params


def test_parse_verdict() -> None:
    assert parse_verdict("Output A is 12, which is the sum.\nVerdict: B") == "B"
    assert parse_verdict("**Verdict:** **A**") == "A"
    assert parse_verdict("Verdict: Output B") == "B"
    assert parse_verdict(" b ") is None and parse_verdict("B.") == "B"
    assert parse_verdict("the verdict: a tie") is None
    assert parse_verdict("") is None


def test_estimate_bounds_the_writer_and_one_judge_call_per_input() -> None:
    same = Distinguish.estimate(DistinguishParams(model="m", num_inputs=4), 100, [Flow(5, 50)])
    assert [(c.model, c.calls) for c in same.calls] == [("m", 5)]
    assert same.output == Flow(5, 50)
    split = Distinguish.estimate(DistinguishParams(model="m", judge="j"), 100, [Flow(5, 50)])
    assert [(c.model, c.calls) for c in split.calls] == [("m", 1), ("j", 3)]
    assert Distinguish.estimate(DistinguishParams(model="m"), 100, [Flow(1, 50)]).calls == ()


def test_params_bounds() -> None:
    with pytest.raises(ValueError):
        DistinguishParams(model="m", num_inputs=11)
    with pytest.raises(ValueError):
        DistinguishParams(model="m", margin=-1)
    assert DistinguishParams(model="m").temperature == 0.0
