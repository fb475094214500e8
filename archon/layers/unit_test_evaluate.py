"""``unit_test_evaluate``: run candidates against tests and rank them by tests passed."""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import ClassVar

from pydantic import Field

from archon.layers._calls import (
    candidates_of,
    complete_all,
    first_text,
    kept,
    request,
    tests_of,
    top,
)
from archon.layers.answers import extract_code, parse_verdict
from archon.layers.base import (
    CallEstimate,
    Flow,
    Layer,
    LayerContext,
    LayerEstimate,
    flows_of,
    max_tokens_of,
    prompt_tokens,
    total_items,
)
from archon.layers.common import SamplingParams, TopK
from archon.layers.prompts import build_messages, query_text, render, template
from archon.values import Candidate, Candidates, Payload, TestCase, Tests

SYSTEM_PROMPT = "You are a strict grader. You check one requirement at a time."
"""Default system prompt of the judge of natural-language checks."""

CHECK_PROMPT = """Does the answer below satisfy this check?

Check: {test}

Query:
{query}

Answer:
{candidate}

Reply with one line: "Verdict: Yes" or "Verdict: No"."""
"""One call per (candidate, natural-language check) (``{test}``, ``{query}``, ``{candidate}``)."""


class UnitTestEvaluateParams(SamplingParams):
    """Code tests run in a sandbox; natural-language checks are judged by ``model``."""

    model: str | None = None
    top_k: TopK = None
    timeout_s: float = Field(5.0, gt=0.0, le=600.0)
    memory_mb: int = Field(512, ge=16, le=65536)


class UnitTestEvaluate(Layer[UnitTestEvaluateParams]):
    """Rank candidates by the number of tests they pass (code in a sandboxed subprocess)."""

    kind: ClassVar[str] = "unit_test_evaluate"
    Params = UnitTestEvaluateParams
    consumes = (Candidates, Tests)
    produces = Candidates
    is_filter: ClassVar[bool] = True
    prompts = MappingProxyType({"system": SYSTEM_PROMPT, "check": CHECK_PROMPT})

    @classmethod
    def estimate(
        cls, params: UnitTestEvaluateParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        candidate_flows, test_flows = _split_flows(inputs)
        candidates = total_items(candidate_flows)
        tests = total_items(test_flows)
        tokens = max_tokens_of(candidate_flows)
        keep = kept(candidates, params.top_k)
        calls: tuple[CallEstimate, ...] = ()
        if params.model is not None:
            # Upper bound: every test may be a natural-language check judged per candidate.
            n = candidates * tests
            per_call_in = prompt_tokens(query_tokens, tokens, max_tokens_of(test_flows))
            calls = (CallEstimate(params.model, n, n * per_call_in, n * params.max_tokens),)
        return LayerEstimate(output=Flow(items=keep, tokens=tokens), calls=calls)

    async def run(
        self, ctx: LayerContext, params: UnitTestEvaluateParams, inputs: Sequence[Payload]
    ) -> Payload:
        candidates = candidates_of(inputs)
        tests = [t for payload in tests_of(inputs) for t in payload.items]
        # Executed in the sandbox: code tests, and io tests that say what output to expect.
        code = [t for t in tests if t.kind == "code" or (t.kind == "io" and t.stdout is not None)]
        natural = [t for t in tests if t.kind == "natural"]
        if natural and params.model is None:
            ctx.warn(f"{len(natural)} natural-language checks ignored: no `model` to judge them")
            natural = []
        total = len(code) + len(natural)
        passed = [0] * len(candidates)
        if code:
            # One candidate at a time: the layer starts no tasks and bounds local CPU use.
            for k, candidate in enumerate(candidates):
                report = await ctx.run_tests(
                    extract_code(candidate.text),
                    code,
                    timeout_s=params.timeout_s,
                    memory_mb=params.memory_mb,
                )
                passed[k] += report.passed
        if natural:
            for k, count in enumerate(await _judge(ctx, params, candidates, natural)):
                passed[k] += count
        order = sorted(range(len(candidates)), key=lambda k: -passed[k])
        keep = top(order, params.top_k)
        return Candidates(
            items=tuple(
                candidates[k].model_copy(update={"score": passed[k] / total if total else None})
                for k in keep
            )
        )


async def _judge(
    ctx: LayerContext,
    params: UnitTestEvaluateParams,
    candidates: Sequence[Candidate],
    checks: Sequence[TestCase],
) -> list[int]:
    """Checks passed per candidate, each check judged by ``params.model`` (unparsable: fail)."""
    assert params.model is not None
    query = query_text(ctx.query)
    prompt = template(params.prompt, CHECK_PROMPT)
    pairs = [(k, check) for k in range(len(candidates)) for check in checks]
    requests = [
        request(
            params.model,
            build_messages(
                render(prompt, test=check.text, query=query, candidate=candidates[k].text),
                system=params.system_prompt,
                default_system=SYSTEM_PROMPT,
            ),
            params,
        )
        for k, check in pairs
    ]
    passed = [0] * len(candidates)
    unparsed = 0
    for (k, _), response in zip(pairs, await complete_all(ctx, requests), strict=True):
        verdict = parse_verdict(first_text(response))
        unparsed += verdict is None
        passed[k] += verdict is True
    if unparsed:
        ctx.warn(f"{unparsed} of {len(pairs)} check verdicts unparsable; counted as failed")
    return passed


def _split_flows(inputs: Sequence[Flow]) -> tuple[Sequence[Flow], Sequence[Flow]]:
    """The candidate flows and the test flows: by payload type when the estimate knows the
    types, else by position (candidates first, then tests)."""
    if all(flow.payload is None for flow in inputs):
        return inputs[:1], inputs[1:]
    return flows_of(inputs, Candidates), flows_of(inputs, Tests)
