"""``exec_vote``: execution-based agreement between candidate programs (MBR-exec, CodeT).

Every candidate program runs on one shared set of inputs; candidates that behave the same
on all of them (same return values, or the same exception type) form a group, and the
largest group wins -- optionally weighted by the tests its programs pass (CodeT's dual
agreement). The inputs need no expected outputs, so a weak model can write them.

Sandbox use, through the context: ``ctx.run_calls`` (function tasks) and ``ctx.run_stdio``
(stdin/stdout programs), and ``ctx.run_tests`` for the tests; candidates run one after
another, like ``unit_test_evaluate``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Literal

from pydantic import Field

from archon.layers._calls import (
    candidates_of,
    complete_all,
    first_text,
    given_tests,
    kept,
    request,
    top,
)
from archon.layers._query_examples import calls_in, extract
from archon.layers.answers import extract_code
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

SYSTEM_PROMPT = (
    "You write varied, valid test inputs for programs. You never write expected outputs."
)
"""Default system prompt of the input writer."""

CALLS_PROMPT = """Write {n} different test inputs for the Python function {function} that the
task below asks for.

Task:
{query}

Each input is one call of the function with literal arguments, on its own line, for example
{example}
Cover ordinary cases, edge cases and tricky cases. Write only the calls, without expected
results, inside one ```python block."""
"""Function tasks (``{query}``, ``{n}``, ``{function}``, ``{example}``)."""

STDIN_PROMPT = """Write {n} different inputs for a program that solves the task below. The
program reads its input from standard input.

Task:
{query}

Each input must follow the input format the task describes exactly. Put each input in its
own ``` block and write nothing else (no expected outputs)."""
"""Stdin/stdout programs (``{query}``, ``{n}``)."""

_FENCED = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)
_LIST_MARK = re.compile(r"^\s*(?:>>>\s*|\d+[.)]\s+|[-*•]\s+)")


class ExecVoteParams(SamplingParams):
    """Inputs come from the query's examples, the tests' calls and optionally ``model``."""

    model: str | None = None
    """Writes ``num_inputs`` extra inputs (one call; skipped with fewer than 2 candidates)."""
    num_inputs: int = Field(5, ge=1, le=50)
    max_inputs: int = Field(24, ge=1, le=200)
    """At most this many shared inputs are run (query examples first, then tests, then the
    model's)."""
    dual: bool = True
    """Weight each behaviour group by the tests its programs pass (CodeT dual agreement)."""
    top_k: TopK = None
    timeout_s: float = Field(5.0, gt=0.0, le=600.0)
    memory_mb: int = Field(512, ge=16, le=65536)


class ExecVote(Layer[ExecVoteParams]):
    """Group candidate programs by their behaviour on shared inputs; best group first.

    Records ``exec_agreement`` (the share of candidates in the candidate's group) and, with
    tests, ``tests_passed`` on every candidate; ``score`` is the group's normalised score.
    """

    kind: ClassVar[str] = "exec_vote"
    Params = ExecVoteParams
    consumes = (Candidates, Tests)
    optional_inputs = (Tests,)
    produces = Candidates
    prompts = MappingProxyType(
        {"system": SYSTEM_PROMPT, "calls": CALLS_PROMPT, "stdin": STDIN_PROMPT}
    )

    @classmethod
    def estimate(
        cls, params: ExecVoteParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        candidates = flows_of(inputs, Candidates)
        n, tokens = total_items(candidates), max_tokens_of(candidates)
        keep = kept(n, params.top_k)
        calls: tuple[CallEstimate, ...] = ()
        if params.model is not None:
            tokens_in = prompt_tokens(query_tokens)
            calls = (CallEstimate(params.model, 1, tokens_in, params.max_tokens),)
        return LayerEstimate(output=Flow(items=keep, tokens=tokens), calls=calls)

    async def run(
        self, ctx: LayerContext, params: ExecVoteParams, inputs: Sequence[Payload]
    ) -> Payload:
        candidates = candidates_of(inputs)
        if not candidates:
            return Candidates()
        plan = await _plan(ctx, params, candidates, inputs)
        if not plan.inputs:
            written = ", and the model wrote none" if params.model else ""
            why = f"no inputs: the query states no example, the tests call nothing{written}"
            return _fallback(ctx, params, candidates, why)
        runs = [await _execute(ctx, params, plan, c) for c in candidates]
        if not any(run.ran for run in runs):
            why = f"no candidate ran on any of the {len(plan.inputs)} inputs (load error or raise)"
            return _fallback(ctx, params, candidates, why)
        passed = [run.passed for run in runs] if plan.tests and params.dual else None
        result = agree([run.behaviour for run in runs], passed)
        ranked = [_annotate(candidates[k], k, result, runs, plan) for k in result.order]
        return Candidates(items=top(ranked, params.top_k))


# ---------------------------------------------------------------------- agreement (pure)

Key = tuple[str, str]
"""One input's outcome: ``("ok", value)``, ``("error", exception type)`` or
``("timeout", "")``."""


@dataclass(frozen=True)
class Agreement:
    """Behaviour groups and the resulting order of the candidates.

    Attributes:
        groups: candidate indices per behaviour group, in order of first appearance.
        group_of: the group index of each candidate.
        order: candidate indices, best group first; within a group, input order.
        shares: per candidate, the share of candidates in its group (0 when its program
            ran on no input: crashing the same way is no agreement).
        scores: per candidate, its group's score normalised to ``[0, 1]``.
    """

    groups: tuple[tuple[int, ...], ...]
    group_of: tuple[int, ...]
    order: tuple[int, ...]
    shares: tuple[float, ...]
    scores: tuple[float, ...]


def outcome_key(status: str, value: str | None, error: str | None) -> Key:
    """The comparable form of one outcome: values for ``ok``, the exception type else."""
    if status == "ok":
        return ("ok", normalise_output(value or ""))
    if status == "timeout":
        return ("timeout", "")
    return ("error", error or "")


def normalise_output(text: str) -> str:
    """Whitespace-insensitive output: tokens of each line, no blank trailing lines."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def group_behaviours(behaviours: Sequence[Sequence[Key]]) -> list[list[int]]:
    """Candidate indices grouped by identical behaviour vector, in order of first appearance."""
    groups: dict[tuple[Key, ...], list[int]] = {}
    for k, behaviour in enumerate(behaviours):
        groups.setdefault(tuple(behaviour), []).append(k)
    return list(groups.values())


def agree(behaviours: Sequence[Sequence[Key]], passed: Sequence[float] | None = None) -> Agreement:
    """Group identical behaviour vectors and rank the groups.

    Without ``passed`` a group scores its size ``|G|`` (MBR-exec, AlphaCode's clustering).
    With ``passed`` (tests passed per candidate) it scores ``|G| × p(G)``, ``p(G)`` the mean
    number of tests its members pass (CodeT's dual agreement); ties go to the larger group.
    Groups whose programs returned nothing on any input rank last. Remaining ties go to the
    group whose first member comes first, so the order is deterministic.
    """
    n = len(behaviours)
    groups = group_behaviours(behaviours)
    live = [any(key[0] == "ok" for key in behaviours[g[0]]) for g in groups]
    raw = [len(g) * (_mean(passed, g) if passed is not None else 1.0) for g in groups]
    ranked = sorted(range(len(groups)), key=lambda g: (not live[g], -raw[g], -len(groups[g]), g))
    best = max(passed, default=0.0) if passed is not None else 1.0
    group_of = [0] * n
    for g, members in enumerate(groups):
        for k in members:
            group_of[k] = g
    shares = [len(groups[g]) / n if live[g] else 0.0 for g in group_of]
    scores = [raw[g] / (n * best) if live[g] and best > 0 else 0.0 for g in group_of]
    return Agreement(
        groups=tuple(tuple(g) for g in groups),
        group_of=tuple(group_of),
        order=tuple(k for g in ranked for k in groups[g]),
        shares=tuple(shares),
        scores=tuple(scores),
    )


def _mean(values: Sequence[float], indices: Sequence[int]) -> float:
    return sum(values[k] for k in indices) / len(indices)


# ---------------------------------------------------------------------- inputs and runs


@dataclass(frozen=True)
class _Plan:
    mode: Literal["calls", "stdin"]
    inputs: tuple[str, ...]
    tests: tuple[TestCase, ...]


@dataclass(frozen=True)
class _Run:
    behaviour: tuple[Key, ...]
    passed: float
    ran: bool


async def _plan(
    ctx: LayerContext,
    params: ExecVoteParams,
    candidates: Sequence[Candidate],
    inputs: Sequence[Payload],
) -> _Plan:
    """The shared inputs and the tests: the query's own, the given ones, the model's."""
    query = query_text(ctx.query)
    stated = extract(query)
    given = given_tests(inputs)
    tests = tuple(dict.fromkeys([*stated.tests, *given]))
    code_tests = [t.text for t in tests if t.kind == "code"]
    entry = stated.entry or _entry_of(code_tests)
    if entry is None and any(t.kind == "io" for t in tests):
        found = [t.stdin for t in tests if t.kind == "io"]
        mode: Literal["calls", "stdin"] = "stdin"
    else:
        found = [*stated.calls, *(c for t in code_tests for c in calls_in(t, entry))]
        mode = "calls"
    if params.model is not None and len(candidates) > 1:
        found += await _model_inputs(ctx, params, query, mode, entry, found)
    kept = tuple(t for t in tests if t.kind == ("io" if mode == "stdin" else "code"))
    return _Plan(mode, tuple(dict.fromkeys(found))[: params.max_inputs], kept)


def _entry_of(code_tests: Sequence[str]) -> str | None:
    """The function the tests call most often (None when they call none)."""
    names = [call.partition("(")[0] for test in code_tests for call in calls_in(test)]
    return max(dict.fromkeys(names), key=names.count) if names else None


async def _model_inputs(
    ctx: LayerContext,
    params: ExecVoteParams,
    query: str,
    mode: Literal["calls", "stdin"],
    entry: str | None,
    known: Sequence[str],
) -> list[str]:
    """Inputs the model writes (one call); unparsable replies give none, with a warning."""
    assert params.model is not None
    if mode == "stdin":
        user = render(template(params.prompt, STDIN_PROMPT), query=query, n=params.num_inputs)
    else:
        function = f"`{entry}`" if entry else "(use the name the task gives)"
        example = f"`{known[0]}`" if known else f"`{entry or 'solve'}(1, [2, 3])`"
        user = render(
            template(params.prompt, CALLS_PROMPT),
            query=query,
            n=params.num_inputs,
            function=function,
            example=example,
        )
    messages = build_messages(user, system=params.system_prompt, default_system=SYSTEM_PROMPT)
    (response,) = await complete_all(ctx, [request(params.model, messages, params)])
    text = first_text(response)
    found = parse_stdin_inputs(text) if mode == "stdin" else parse_call_inputs(text, entry)
    if not found:
        ctx.warn(f"no {mode} inputs could be parsed from the model's reply")
    return found[: params.num_inputs]


def parse_call_inputs(text: str, entry: str | None) -> list[str]:
    """Distinct self-contained calls of ``entry`` in a reply, one per line, in order."""
    lines = extract_code(text).splitlines() + text.splitlines()
    found = [call for line in lines for call in calls_in(_LIST_MARK.sub("", line), entry)]
    return list(dict.fromkeys(found))


def parse_stdin_inputs(text: str) -> list[str]:
    """The non-empty fenced blocks of a reply, each one standard input text."""
    blocks = [block.strip("\n") for block in _FENCED.findall(text)]
    return list(dict.fromkeys(block + "\n" for block in blocks if block.strip()))


async def _execute(
    ctx: LayerContext, params: ExecVoteParams, plan: _Plan, candidate: Candidate
) -> _Run:
    """Run one candidate on the shared inputs, then on the tests."""
    code = extract_code(candidate.text)
    run = ctx.run_stdio if plan.mode == "stdin" else ctx.run_calls
    report = await run(code, plan.inputs, timeout_s=params.timeout_s, memory_mb=params.memory_mb)
    behaviour = tuple(outcome_key(o.status, o.value, o.error) for o in report.outcomes)
    passed = await _tests_passed(ctx, params, plan, code, behaviour) if plan.tests else 0.0
    return _Run(behaviour, passed, any(key[0] == "ok" for key in behaviour))


async def _tests_passed(
    ctx: LayerContext, params: ExecVoteParams, plan: _Plan, code: str, behaviour: Sequence[Key]
) -> float:
    """Tests passed: ``run_tests`` for asserts; stdin tests compare the outputs seen."""
    if plan.mode == "calls":
        texts = [t.text for t in plan.tests]
        report = await ctx.run_tests(
            code, texts, timeout_s=params.timeout_s, memory_mb=params.memory_mb
        )
        return float(report.passed)
    seen = dict(zip(plan.inputs, behaviour, strict=False))
    return float(
        sum(
            seen.get(t.stdin) == ("ok", normalise_output(t.stdout))
            for t in plan.tests
            if t.stdout is not None
        )
    )


def _annotate(
    candidate: Candidate, k: int, result: Agreement, runs: Sequence[_Run], plan: _Plan
) -> Candidate:
    annotated = candidate.with_signal("exec_agreement", result.shares[k])
    if plan.tests:
        annotated = annotated.with_signal("tests_passed", runs[k].passed / len(plan.tests))
    return annotated.model_copy(update={"score": result.scores[k]})


def _fallback(
    ctx: LayerContext, params: ExecVoteParams, candidates: Sequence[Candidate], why: str
) -> Candidates:
    """Nothing to compare: the input order, no signal, and a warning saying why."""
    ctx.warn(f"{why}; kept the input order, recorded no signal")
    return Candidates(items=top(candidates, params.top_k))
