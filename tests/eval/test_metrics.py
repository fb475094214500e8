"""Every metric on hand-made cases; pass@k against its closed formula."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from math import comb

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archon.eval import EvalItem, MetricContext, MetricOptions, Score, default_metrics, pass_at_k
from archon.eval.metrics import (
    CodePassAt1,
    ExactMatch,
    FreeFormMatch,
    JudgePairwise,
    JudgeSingle,
    MathEquivalence,
    MetricError,
    MultipleChoice,
    UnknownMetric,
    mean_pass_at_k,
    sandbox_runner,
)
from archon.eval.metrics.base import Metric
from archon.eval.metrics.judge import parse_pair, parse_rating
from archon.runtime import Limits
from archon.runtime.clients.fake import ScriptedClient, prompt_text
from archon.values import CompletionRequest


def ctx(client: ScriptedClient | None = None) -> MetricContext:
    return MetricContext(client=client, limits=Limits(backoff_s=0.001), runner=sandbox_runner)


def score(
    metric: Metric, item: EvalItem, answers: Sequence[str], c: MetricContext | None = None
) -> Score:
    return asyncio.run(metric.score(item, tuple(answers), c or ctx()))


def free(*targets: str) -> EvalItem:
    return EvalItem(id="x", turns=("question?",), targets=targets)


# --- pass@k ---------------------------------------------------------------------------------


def closed_form(n: int, c: int, k: int) -> float:
    return 1.0 - comb(n - c, k) / comb(n, k)


@given(
    st.integers(1, 40).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))
    )
)
def test_pass_at_k_matches_the_closed_formula(args: tuple[int, int, int]) -> None:
    n, c, k = args
    assert pass_at_k(n, c, k) == pytest.approx(closed_form(n, c, k), abs=1e-12)


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 0, 1, 0.0),  # c == 0
        (5, 0, 5, 0.0),
        (5, 5, 1, 1.0),
        (5, 1, 5, 1.0),  # n == k: any correct sample is drawn
        (5, 0, 5, 0.0),  # n == k, none correct
        (1, 1, 1, 1.0),
        (10, 3, 1, 0.3),  # pass@1 is the fraction correct
        (4, 2, 2, 1 - 1 / 6),
    ],
)
def test_pass_at_k_edge_cases(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected)


@pytest.mark.parametrize(("n", "c", "k"), [(5, 6, 1), (5, -1, 1), (5, 1, 0), (5, 1, 6)])
def test_pass_at_k_rejects_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_mean_pass_at_k_skips_items_with_too_few_samples() -> None:
    mean, used = mean_pass_at_k([(5, 1), (5, 0), (2, 2)], 5)
    assert used == 2 and mean == pytest.approx(0.5)
    assert mean_pass_at_k([(2, 1)], 5) == (None, 0)


# --- string metrics -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "targets", "ok"),
    [
        ("42", ("42",), True),
        ("The answer is 42.", ("42",), True),
        ("23 + 45 = 68", ("68",), True),
        ("1,024", ("1024",), True),
        ("-7", ("-7",), True),
        ("  Paris. ", ("paris",), True),
        ("The Eiffel Tower", ("eiffel tower",), True),
        ("three", ("three", "3"), True),
        ("41", ("42",), False),
        ("I think it is London", ("Paris",), False),
        ("", ("42",), False),
        ("\\boxed{12}", ("12",), True),
    ],
)
def test_exact_match(answer: str, targets: tuple[str, ...], ok: bool) -> None:
    result = score(ExactMatch(), free(*targets), [answer])
    assert result.correct is ok and result.value == (1.0 if ok else 0.0)


def test_exact_match_needs_a_target() -> None:
    with pytest.raises(MetricError):
        score(ExactMatch(), EvalItem(id="x", turns=("q",)), ["a"])


@pytest.mark.parametrize(
    ("answer", "ok"),
    [
        ("It was written by James Ellroy.", True),
        ("james ellroy", True),
        ("Ellroy", False),
        ("Raymond Chandler", False),
    ],
)
def test_freeform_match_by_containment(answer: str, ok: bool) -> None:
    item = free("JAMES ELLROY", "Ellroy, James")
    assert score(FreeFormMatch(), item, [answer]).correct is ok


def test_freeform_parser_model_rescues_what_rules_reject() -> None:
    client = ScriptedClient([(r"Gold answers", "Same person, so [[1]]")])
    item = free("B1", "Thiamine")
    result = score(FreeFormMatch(parser_model="judge"), item, ["vitamin B-one"], ctx(client))
    assert result.correct is True and result.usage.calls == 1 and client.calls == 1
    # Rule-matched answers never reach the parser.
    assert score(FreeFormMatch(parser_model="judge"), item, ["Thiamine"], ctx(client)).correct
    assert client.calls == 1


def test_freeform_parser_unparseable_verdict_is_invalid() -> None:
    client = ScriptedClient([(None, "hmm, not sure")])
    result = score(FreeFormMatch(parser_model="judge"), free("B1"), ["x"], ctx(client))
    assert result.valid is False


MC = EvalItem(
    id="mc",
    turns=("Capital of Italy?",),
    choices=("Paris", "London", "Rome", "Berlin"),
    correct_choices=(2,),
)


@pytest.mark.parametrize(
    ("answer", "ok"),
    [
        ("C", True),
        ("(C)", True),
        ("C. Rome", True),
        ("The answer is C.", True),
        ("Answer: (C)", True),
        ("Rome", True),
        ("I believe the capital is Rome.", True),
        ("A", False),
        ("Paris", False),
        ("no idea", False),
    ],
)
def test_multiple_choice(answer: str, ok: bool) -> None:
    assert score(MultipleChoice(), MC, [answer]).correct is ok


def test_multiple_choice_parser_model_used_only_when_rules_fail() -> None:
    client = ScriptedClient([(r"Which option", "C")])
    result = score(
        MultipleChoice(parser_model="judge"), MC, ["the one with the Colosseum"], ctx(client)
    )
    assert result.correct is True and client.calls == 1
    assert score(MultipleChoice(parser_model="judge"), MC, ["B"], ctx(client)).correct is False
    assert client.calls == 1


@pytest.mark.parametrize(
    ("answer", "target", "ok"),
    [
        ("so the result is \\boxed{\\frac{5}{6}}", "\\frac{5}{6}", True),
        ("The answer is 0.5", "\\frac{1}{2}", True),
        ("\\boxed{5\\sqrt{2}}", "5\\sqrt{2}", True),
        ("\\boxed{\\sqrt{50}}", "5\\sqrt{2}", True),
        ("\\boxed{7}", "6", False),
        ("I do not know", "6", False),
    ],
)
def test_math_equivalence(answer: str, target: str, ok: bool) -> None:
    assert score(MathEquivalence(), free(target), [answer]).correct is ok


# --- code -----------------------------------------------------------------------------------

ADD = EvalItem(
    id="add",
    turns=("write add",),
    code_prefix='def add(a, b):\n    """Add two numbers."""\n',
    entry_point="add",
    tests=(
        "def check(candidate):\n"
        "    assert candidate(1, 2) == 3\n"
        "    assert candidate(-1, 1) == 0\n\n"
        "check(add)\n",
    ),
)


@pytest.mark.parametrize(
    ("answer", "ok"),
    [
        ("```python\ndef add(a, b):\n    return a + b\n```", True),
        ("    return a + b", True),  # a body-only completion under the prompt
        ("```python\ndef add(a, b):\n    return a - b\n```", False),
        ("```python\ndef add(a, b)\n    return a + b\n```", False),  # syntax error
        ("```python\ndef add(a, b):\n    while True:\n        pass\n```", False),  # timeout
        ("", False),
    ],
)
def test_code_pass_at_1_runs_in_the_sandbox(answer: str, ok: bool) -> None:
    assert score(CodePassAt1(timeout_s=2.0), ADD, [answer]).correct is ok


def test_code_sandbox_blocks_writes_outside_its_folder(tmp_path: object) -> None:
    target = "/tmp/archon-eval-escape-test.txt"
    answer = (
        f"```python\ndef add(a, b):\n    open({target!r}, 'w').write('x')\n    return a + b\n```"
    )
    result = score(CodePassAt1(timeout_s=2.0), ADD, [answer])
    import os

    assert result.correct is False and not os.path.exists(target)


# --- judges ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rating"),
    [
        ("good. Rating: [[8]]", 8.0),
        ("[[7.5]]", 7.5),
        ("Rating: 3", 3.0),
        ("[[11]]", None),
        ("?", None),
    ],
)
def test_parse_rating(text: str, rating: float | None) -> None:
    assert parse_rating(text) == rating


def test_parse_pair() -> None:
    assert parse_pair("A is better [[A]]") == "A"
    assert parse_pair("tie [[C]]") == "C"
    assert parse_pair("no verdict") is None


MT = EvalItem(id="mt", turns=("Write a poem.", "Now shorter."), references=("", ""))


def test_judge_single_rates_each_turn_and_averages() -> None:
    def reply(request: CompletionRequest) -> str:
        return "Rating: [[4]]" if "Now shorter." in prompt_text(request) else "Rating: [[8]]"

    client = ScriptedClient(reply)
    result = score(JudgeSingle(judge_model="judge"), MT, ["a poem", "short"], ctx(client))
    assert result.value == 6.0 and result.valid and client.calls == 2
    assert result.usage.calls == 2 and result.correct is None
    # The second judgement sees the whole conversation.
    assert "a poem" in prompt_text(client.requests[1])


def test_judge_single_unparseable_is_invalid_and_needs_a_model() -> None:
    client = ScriptedClient([(None, "I like it")])
    result = score(JudgeSingle(judge_model="judge"), MT, ["a", "b"], ctx(client))
    assert result.valid is False
    with pytest.raises(MetricError):
        score(JudgeSingle(), MT, ["a", "b"], ctx(client))


PAIR = EvalItem(id="p", turns=("Say hi.",), references=("REFERENCE hello",))


def _prefers(marker: str) -> ScriptedClient:
    def reply(request: CompletionRequest) -> str:
        text = prompt_text(request)
        a = text.split("[Answer A]")[1].split("[Answer B]")[0]
        return "[[A]]" if marker in a else "[[B]]"

    return ScriptedClient(reply)


def test_pairwise_judge_swaps_positions() -> None:
    metric = JudgePairwise(judge_model="judge")
    win = score(metric, PAIR, ["GOOD hi"], ctx(_prefers("GOOD")))
    assert win.value == 1.0 and win.correct is True and win.usage.calls == 2
    loss = score(metric, PAIR, ["meh"], ctx(_prefers("REFERENCE")))
    assert loss.value == 0.0 and loss.correct is False
    # A judge that always says "A" has pure position bias: the swap cancels it out.
    biased = score(metric, PAIR, ["whatever"], ctx(ScriptedClient([(None, "[[A]]")])))
    assert biased.value == 0.5 and biased.correct is False
    tie = score(metric, PAIR, ["x"], ctx(ScriptedClient([(None, "[[C]]")])))
    assert tie.value == 0.5


def test_pairwise_needs_a_reference() -> None:
    item = EvalItem(id="p", turns=("Say hi.",))
    with pytest.raises(MetricError):
        score(JudgePairwise(judge_model="judge"), item, ["hi"], ctx(ScriptedClient()))


# --- registry -------------------------------------------------------------------------------


def test_registry_builds_with_options_and_suggests_names() -> None:
    registry = default_metrics()
    judge = registry.build("judge_single", MetricOptions(judge_model="j"))
    assert isinstance(judge, JudgeSingle) and judge.judge_model == "j"
    assert {m.name for m in registry} >= {"exact_match", "multiple_choice", "math", "code"}
    with pytest.raises(UnknownMetric, match="did you mean 'exact_match'"):
        registry.build("exact_mach")
