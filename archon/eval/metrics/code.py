"""Code correctness: pass@1 of the final answer, executed by the sandbox of
:mod:`archon.sandbox` (isolated processes; never in-process).

The sandbox decides each verdict where the candidate cannot reach it (see its docstring).
One more forgery is specific to datasets such as HumanEval, whose tests call helpers defined
in the prompt (``poly`` in HumanEval/32): an answer could redefine the helper so that any
result checks out. So the prompt's code, minus the entry point, runs in the tests' own
process before each test -- the tests use the dataset's helpers, never the answer's.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass

from archon.eval.items import EvalItem
from archon.eval.metrics.base import CodeReport, MetricContext, MetricError, Score
from archon.layers.answers import extract_code
from archon.sandbox import run_tests
from archon.values import TestCase


async def sandbox_runner(
    code: str, tests: Sequence[str | TestCase], timeout_s: float, memory_mb: int
) -> CodeReport:
    """The default :data:`~archon.eval.metrics.base.CodeRunner`: :func:`run_tests`."""
    report = await run_tests(code, tests, timeout_s=timeout_s, memory_mb=memory_mb)
    failing = next((o for o in report.outcomes if o.status != "passed"), None)
    detail = ""
    if report.setup.status != "passed":
        detail = f"program {report.setup.status}: {report.setup.message}"
    elif failing is not None:
        detail = f"{failing.status}: {failing.message}"
    return CodeReport(passed=report.passed, total=report.total, detail=detail[:300])


def program(item: EvalItem, answer: str) -> str:
    """The program to test: the code in ``answer``, completed with the item's ``code_prefix``
    (signature, imports) when the answer does not define ``entry_point`` itself."""
    code = extract_code(answer)
    if item.entry_point and not re.search(rf"def\s+{re.escape(item.entry_point)}\s*\(", code):
        # A body-only completion (HumanEval's original format): indent it under the prompt.
        body = "\n".join(
            line if not line.strip() or line.startswith((" ", "\t")) else "    " + line
            for line in code.splitlines()
        )
        return f"{item.code_prefix}{body}\n"
    if item.code_prefix:
        # Keep the prompt's imports and helpers; the answer's definitions come later and win.
        return (
            f"{item.code_prefix}    pass\n\n{code}\n"
            if item.entry_point
            else f"{item.code_prefix}\n{code}\n"
        )
    return code


def trusted_helpers(item: EvalItem) -> str:
    """The prompt's code without the entry point's definition: its imports and helpers, run
    in the tests' process so that tests never call an answer's redefinition of them."""
    if not item.entry_point or not item.code_prefix.strip():
        return ""
    try:
        tree = ast.parse(item.code_prefix)
    except (SyntaxError, ValueError):
        return ""
    kept = [
        node
        for node in tree.body
        if not (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.name == item.entry_point
        )
    ]
    return ast.unparse(ast.Module(body=kept, type_ignores=[])) if kept else ""


def item_tests(item: EvalItem) -> list[str | TestCase]:
    """What the sandbox runs for ``item``: its code tests (after the trusted helpers), then
    its stdin/stdout cases."""
    helpers = trusted_helpers(item)
    code: list[str | TestCase] = [f"{helpers}\n\n{t}" if helpers else t for t in item.tests]
    return [*code, *item.io_tests]


@dataclass(frozen=True)
class CodePassAt1:
    """Correct when the program in the final answer passes every test of the item."""

    timeout_s: float = 10.0
    memory_mb: int = 1024
    name: str = "code"
    needs_model: bool = False

    async def score(self, item: EvalItem, answers: Sequence[str], ctx: MetricContext) -> Score:
        if not item.tests and not item.io_tests:
            raise MetricError(f"{self.name}: item {item.id} has no tests")
        answer = answers[-1] if answers else ""
        if not answer.strip():
            return Score.of(False, "empty answer")
        tests = item_tests(item)
        report = await ctx.runner(program(item, answer), tests, self.timeout_s, self.memory_mb)
        detail = f"{report.passed}/{report.total} tests passed"
        if report.detail:
            detail += f"; {report.detail}"
        return Score.of(report.all_passed, detail)
