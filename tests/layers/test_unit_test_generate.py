"""unit_test_generate: the contract, plus code asserts vs natural checks."""

from __future__ import annotations

from archon.layers.unit_test_generate import (
    UnitTestGenerate,
    UnitTestGenerateParams,
    is_code_task,
    parse_code_tests,
)
from archon.runtime.clients.fake import ScriptedClient
from archon.testing import LayerContract
from archon.values import Tests

CODE_REPLY = """```python
assert add(1, 2) == 3
assert add(-1, 1) == 0
assert add(1, 2) == 3
assert add(
```"""


class TestUnitTestGenerateContract(LayerContract):
    layer = UnitTestGenerate
    params = UnitTestGenerateParams(model="judge", num_tests=3)
    script = ((None, "1. The answer is 42.\n2. The answer is a number."),)


def test_code_mode_keeps_distinct_compilable_asserts() -> None:
    contract = TestUnitTestGenerateContract()
    contract.params = UnitTestGenerateParams(model="judge", mode="code")  # type: ignore[misc]
    result = contract.run_sync(0, ScriptedClient([(None, CODE_REPLY)]))
    assert isinstance(result.output, Tests)
    assert [t.text for t in result.output.items] == [
        "assert add(1, 2) == 3",
        "assert add(-1, 1) == 0",
    ]
    assert {t.kind for t in result.output.items} == {"code"}


def test_auto_mode_writes_natural_checks_for_prose_queries() -> None:
    result = TestUnitTestGenerateContract().run_sync(
        0, ScriptedClient([(None, "1. Mentions 42.\n2. Is short.\n3. Is polite.\n4. Extra.")])
    )
    assert isinstance(result.output, Tests)
    assert [t.text for t in result.output.items] == ["Mentions 42.", "Is short.", "Is polite."]
    assert {t.kind for t in result.output.items} == {"natural"}


def test_code_task_heuristic() -> None:
    assert is_code_task("Write a Python function add(a, b)")
    assert not is_code_task("What is the capital of France?")


def test_parse_code_tests_ignores_non_asserts() -> None:
    assert parse_code_tests("import os\nassert f(1)\nprint(2)") == ["assert f(1)"]
