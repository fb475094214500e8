"""``unit_test_generate``: write tests for the query (code asserts or natural checks)."""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from types import MappingProxyType
from typing import ClassVar, Literal

from pydantic import Field

from archon.layers._calls import complete_all, first_text, judge_request
from archon.layers.answers import extract_code
from archon.layers.base import (
    CallEstimate,
    Flow,
    Layer,
    LayerContext,
    LayerEstimate,
    prompt_tokens,
)
from archon.layers.common import JudgeParams
from archon.layers.prompts import build_messages, query_text, render, template
from archon.values import Payload, TestCase, Tests

SYSTEM_PROMPT = "You write precise, independent tests that a correct answer must pass."
"""Default system prompt of the test writer."""

CODE_PROMPT = """Write {n} unit tests for a correct Python solution of the task below.

Task:
{query}

Each test is one self-contained `assert` statement on a single line that calls the function
the task asks for (use the name and signature the task gives). Cover ordinary cases and edge
cases. Reply with the asserts only, inside one ```python block."""
"""``mode="code"`` (``{query}``, ``{n}``)."""

NATURAL_PROMPT = """Write {n} checks that a correct, high-quality answer to the query below
must satisfy. Each check is one short, verifiable statement about the answer (for example
"The answer states that the capital of France is Paris").

Query:
{query}

Reply with a numbered list, one check per line, and nothing else."""
"""``mode="natural"`` (``{query}``, ``{n}``)."""

_CODE_HINTS = re.compile(
    r"```|\bdef\s|\bpython\b|\bfunction\b|\bimplement\b|\bprogram\b|\bcode\b"
    r"|\breturns?\b.*\b(list|int|string|array)\b|\bclass\s",
    re.IGNORECASE,
)
_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*•]|\[\s*\d+\s*\])\s+(.+?)\s*$", re.MULTILINE)


class UnitTestGenerateParams(JudgeParams):
    """``mode="auto"`` writes code tests for coding queries, natural checks otherwise."""

    num_tests: int = Field(5, ge=1, le=100)
    mode: Literal["auto", "code", "natural"] = "auto"


class UnitTestGenerate(Layer[UnitTestGenerateParams]):
    """Generate up to ``num_tests`` tests for the query."""

    kind: ClassVar[str] = "unit_test_generate"
    Params = UnitTestGenerateParams
    consumes = ()
    produces = Tests
    prompts = MappingProxyType(
        {"system": SYSTEM_PROMPT, "code": CODE_PROMPT, "natural": NATURAL_PROMPT}
    )

    @classmethod
    def estimate(
        cls, params: UnitTestGenerateParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        return LayerEstimate(
            output=Flow(items=params.num_tests, tokens=params.max_tokens),
            calls=(CallEstimate(params.model, 1, prompt_tokens(query_tokens), params.max_tokens),),
        )

    async def run(
        self, ctx: LayerContext, params: UnitTestGenerateParams, inputs: Sequence[Payload]
    ) -> Payload:
        query = query_text(ctx.query)
        kind = (
            params.mode if params.mode != "auto" else ("code" if is_code_task(query) else "natural")
        )
        default = CODE_PROMPT if kind == "code" else NATURAL_PROMPT
        user = render(template(params.prompt, default), query=query, n=params.num_tests)
        messages = build_messages(user, system=params.system_prompt, default_system=SYSTEM_PROMPT)
        (response,) = await complete_all(ctx, [judge_request(params, messages)])
        text = first_text(response)
        found = parse_code_tests(text) if kind == "code" else parse_checks(text)
        if kind == "natural" and found and not _ITEM.search(text):
            ctx.warn("the checks were not a numbered list; took each line as a check")
        if not found:
            ctx.warn(f"no {kind} tests could be parsed from the reply; produced no tests")
        return Tests(items=tuple(TestCase(text=t, kind=kind) for t in found[: params.num_tests]))


def _kind(params: UnitTestGenerateParams, query: str) -> Literal["code", "natural"]:
    if params.mode != "auto":
        return params.mode
    return "code" if is_code_task(query) else "natural"


def is_code_task(query: str) -> bool:
    """Whether ``mode="auto"`` treats the query as a coding task (a keyword heuristic)."""
    return _CODE_HINTS.search(query) is not None


def parse_code_tests(text: str) -> list[str]:
    """Distinct one-line ``assert`` statements that compile (never executed here)."""
    tests: list[str] = []
    for line in extract_code(text).splitlines() + text.splitlines():
        line = line.strip()
        if not line.startswith("assert") or line in tests:
            continue
        try:
            tree = ast.parse(line)
        except (SyntaxError, ValueError):
            continue
        if len(tree.body) == 1 and isinstance(tree.body[0], ast.Assert):
            tests.append(line)
    return tests


def parse_checks(text: str) -> list[str]:
    """Distinct checks from a numbered or bulleted list (or non-empty lines as a fallback)."""
    items = _ITEM.findall(text) or [line.strip() for line in text.splitlines() if line.strip()]
    checks: list[str] = []
    for item in items:
        if item not in checks:
            checks.append(item)
    return checks
