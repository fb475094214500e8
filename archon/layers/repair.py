"""``repair``: execution-feedback repair of candidate programs (self-debugging).

Every candidate program runs in the sandbox; for the ones that fail, a model (``model``, which
may be larger than the one that wrote them) sees the task, the program and what went wrong
-- the failing test or input, the expected and the actual output, or the tail of the
traceback -- and writes a corrected program, which runs again. A program that still fails
is repaired again, up to ``rounds`` times (Self-Debugging, Chen et al., arXiv 2304.05128;
Self-Repair, Olausson et al., arXiv 2306.09896; the iteration on public tests of AlphaCodium).

What counts as failing depends on what the pipeline knows, read only from the query and the
input payloads (never from a dataset's hidden tests):

* **tests**: the query's own examples (:mod:`archon.layers._query_examples`) and the given
  ``Tests``, distinct. Code tests (asserts) run through ``ctx.run_tests``; the actual values
  of a failed assert's calls come from ``ctx.run_calls``. ``io`` tests run the program on
  their stdin and compare its output (trailing whitespace ignored). Natural-language checks
  are ignored. A program fails when it fails any test or does not load.
* **no test, the query asks for a function**: a program fails when it does not load or does
  not define that function.
* **no test, no function**: the program runs as a script with empty stdin (as ``execute``
  runs program-of-thought answers) and fails when it raises, exits non-zero, times out or
  prints nothing.

Programs run as scripts are wrapped so that an exception's traceback (with the program's
line numbers) is printed after a mark on stdout; the repair prompt shows its last lines.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from archon.layers._calls import (
    candidates_of,
    complete_all,
    first_logprob,
    first_text,
    gather_all,
    given_tests,
    request,
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
from archon.layers.common import SamplingParams
from archon.layers.prompts import build_messages, query_text, render, template
from archon.values import Candidate, Candidates, Message, Payload, TestCase, Tests

if TYPE_CHECKING:
    from archon.sandbox import CallOutcome, SandboxReport

SYSTEM_PROMPT = (
    "You are an expert programmer who debugs programs. You read the failure, find the bug"
    " and return the complete corrected program."
)
"""Default system prompt of the repairer."""

REPAIR_PROMPT = """The program below was written for the task that follows, but it fails.

Task:
{query}

Program:
```python
{program}
```

{feedback}

Find the bug and fix it. Write the complete corrected program in one ```python block. Keep
the function names and the input and output format that the task asks for."""
"""One call per failing program per round (``{query}``, ``{program}``, ``{feedback}``; the
parts of the feedback also as ``{input}``, ``{expected}``, ``{actual}``)."""

PROGRAM_CHARS = 4000
"""A program longer than this is cut in the prompt (its head is kept)."""
FIELD_CHARS = 1500
"""The failing input, the expected and the actual output are each cut to this length."""
TRACE_MARK = "\n--- archon: traceback ---\n"
"""Printed by the wrapped program before the traceback of an uncaught exception."""

_TRACED = """import linecache as _linecache, sys as _sys, traceback as _traceback
_source = {source}
_linecache.cache["<program>"] = (len(_source), None, _source.splitlines(True), "<program>")
try:
    exec(compile(_source, "<program>", "exec"), {{"__name__": {name}}})
except Exception as _error:
    _sys.stdout.write({mark})
    _traceback.print_exception(
        type(_error), _error, _error.__traceback__.tb_next, file=_sys.stdout
    )
    _sys.exit(1)
"""

Mode = Literal["tests", "io", "load", "script"]


class RepairParams(SamplingParams):
    """Who repairs, how many programs, how many rounds, and the sandbox limits."""

    model: str = Field(min_length=1)
    """Writes the corrected programs (one call per failing program per round)."""
    rounds: int = Field(1, ge=1, le=5)
    """A repaired program that still fails is repaired again, up to this many times."""
    max_candidates: int | None = Field(4, ge=1, le=1024)
    """Failing programs repaired per round (one per behaviour group; None: every group)."""
    temperature: float | None = Field(0.0, ge=0.0, le=2.0)
    timeout_s: float = Field(5.0, gt=0.0, le=600.0)
    memory_mb: int = Field(512, ge=16, le=65536)
    include_original: bool = True
    """False: the failing input candidates are left out (kept when nothing else remains)."""


class Repair(Layer[RepairParams]):
    """Run candidate programs, repair the failing ones from their errors, keep both.

    Output: the passing input candidates (input order), then the repaired programs that pass
    (in the order they were made), then the rest, most tests passed first (stable: inputs
    before repairs). Every repaired version is kept, each with ``source_node`` = this node
    and the signals ``repair_of`` (index of the input candidate it descends from) and
    ``repair_round``. Every candidate gets ``tests_passed`` (the share of tests it passes)
    or, without tests, ``executed`` (1 when it runs cleanly, else 0).
    """

    kind: ClassVar[str] = "repair"
    Params = RepairParams
    consumes = (Candidates, Tests)
    optional_inputs = (Tests,)
    produces = Candidates
    prompts = MappingProxyType({"system": SYSTEM_PROMPT, "user": REPAIR_PROMPT})

    @classmethod
    def estimate(
        cls, params: RepairParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        candidates = flows_of(inputs, Candidates)
        n, tokens = total_items(candidates), max_tokens_of(candidates)
        repairs = n if params.max_candidates is None else min(n, params.max_candidates)
        calls = repairs * params.rounds
        program = min(max(tokens, params.max_tokens), PROGRAM_CHARS // 4)
        tokens_in = prompt_tokens(query_tokens, program, 3 * FIELD_CHARS // 4)
        output = Flow(items=n + calls, tokens=max(tokens, params.max_tokens))
        if not calls:
            return LayerEstimate(output=output)
        call = CallEstimate(params.model, calls, calls * tokens_in, calls * params.max_tokens)
        return LayerEstimate(output=output, calls=(call,))

    async def run(
        self, ctx: LayerContext, params: RepairParams, inputs: Sequence[Payload]
    ) -> Payload:
        candidates = candidates_of(inputs)
        if not candidates:
            return Candidates()
        plan = plan_checks(query_text(ctx.query), inputs)
        codes = [extract_code(c.text) for c in candidates]
        checks = await gather_all([_check(ctx, params, plan, code) for code in codes])
        failing = [None if check.ok else check.behaviour for check in checks]
        chains = [_Chain(k, codes[k], checks[k]) for k in pick(failing, params.max_candidates)]
        repairs = await _repair(ctx, params, plan, chains)
        items = _assemble(ctx.node_id, params, plan.signal, candidates, checks, repairs)
        return Candidates(items=items)


# ---------------------------------------------------------------------- what is checked


@dataclass(frozen=True)
class Plan:
    """How programs are checked: the mode and the tests it runs (see the module docstring).

    Attributes:
        mode: ``tests`` (asserts), ``io`` (stdin/stdout tests), ``load`` (no test: the
            program must load and define ``entry``) or ``script`` (no test: it must run and
            print something).
        tests: the tests run (for ``load``, one assert that ``entry`` is callable).
        entry: the function the query asks for, when it names one.
    """

    mode: Mode
    tests: tuple[TestCase, ...] = ()
    entry: str | None = None

    @property
    def signal(self) -> str:
        """The signal recorded on each candidate: ``tests_passed``, or ``executed``."""
        return "tests_passed" if self.mode in ("tests", "io") else "executed"


def plan_checks(query: str, inputs: Sequence[Payload]) -> Plan:
    """The tests the query states and the given ones (distinct), and the mode they imply.

    Only code tests and ``io`` tests with an expected output run; natural-language checks
    are ignored. A function task runs its asserts; a stdin/stdout task its ``io`` tests.
    """
    stated = extract(query)
    given = given_tests(inputs)
    tests = _distinct([*stated.tests, *given])
    code = tuple(t for t in tests if t.kind == "code")
    io = tuple(t for t in tests if t.kind == "io" and t.stdout is not None)
    functional = stated.entry is not None or any(calls_in(t.text) for t in code)
    if code and (functional or not io):
        return Plan("tests", code, stated.entry)
    if io:
        return Plan("io", io)
    if stated.entry is not None:
        defines = TestCase(text=f"assert callable({stated.entry})")
        return Plan("load", (defines,), stated.entry)
    return Plan("script")


def _distinct(tests: Sequence[TestCase]) -> tuple[TestCase, ...]:
    """The first of each test, whatever its origin (a query's assert may be given again)."""
    seen: dict[tuple[str, str, str, str | None], TestCase] = {}
    for test in tests:
        seen.setdefault((test.kind, test.text, test.stdin, test.stdout), test)
    return tuple(seen.values())


@dataclass(frozen=True)
class Failure:
    """What the repair prompt says about a failing program.

    Attributes:
        what: ``test`` (a failing assert), ``input`` (an ``io`` test's stdin gives a wrong
            output or an error), ``run`` (the script fails) or ``load`` (the program does not
            load, or lacks the function the task asks for).
        case: the failing assert or the stdin given ('' when there is none).
        expected: the expected value or output ('' when unknown).
        actual: what happened: values returned, output printed, the error or its traceback.
        status: ``failed``, ``error``, ``timeout``, ``ok`` (ran, but a wrong or no output)
            or ``setup`` (did not load).
    """

    what: Literal["test", "input", "run", "load"]
    case: str = ""
    expected: str = ""
    actual: str = ""
    status: str = "error"


@dataclass(frozen=True)
class Check:
    """One program's run: tests passed out of ``total``, a comparable behaviour (the outcome
    of each test), and its first failure (None when it passes everything)."""

    passed: int
    total: int
    behaviour: tuple[str, ...]
    failure: Failure | None

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def share(self) -> float:
        """The share of checks passed."""
        return self.passed / self.total if self.total else float(self.ok)


async def _check(ctx: LayerContext, params: RepairParams, plan: Plan, code: str) -> Check:
    """Run ``code`` as ``plan`` says."""
    if plan.mode in ("tests", "load"):
        report = await ctx.run_tests(
            code,
            [t.text for t in plan.tests],
            timeout_s=params.timeout_s,
            memory_mb=params.memory_mb,
        )
        return tests_check(plan, report)
    stdins = [t.stdin for t in plan.tests] if plan.mode == "io" else [""]
    runs = await ctx.run_stdio(
        traced(code), stdins, timeout_s=params.timeout_s, memory_mb=params.memory_mb
    )
    return runs_check(plan, runs.outcomes, params.timeout_s)


def tests_check(plan: Plan, report: SandboxReport) -> Check:
    """The check of a ``run_tests`` report (the first failing test is the failure)."""
    total = len(plan.tests)
    if report.setup.status != "passed":
        message = report.setup.message or report.setup.status
        status = "setup" if report.setup.status == "error" else report.setup.status
        return Check(
            0, total, (f"setup: {message}",), Failure("load", actual=message, status=status)
        )
    behaviour = tuple(f"{o.status}: {o.message}" for o in report.outcomes)
    first = next((i for i, o in enumerate(report.outcomes) if o.status != "passed"), None)
    if first is None:
        return Check(report.passed, total, behaviour, None)
    outcome, test = report.outcomes[first], plan.tests[first].text
    if plan.mode == "load":
        lacks = f"it does not define the function `{plan.entry}` that the task asks for"
        failure = Failure("load", actual=f"{lacks} ({outcome.message})", status=outcome.status)
    else:
        failure = Failure("test", test, expected_value(test), outcome.message, outcome.status)
    return Check(report.passed, total, behaviour, failure)


def runs_check(plan: Plan, outcomes: Sequence[CallOutcome], timeout_s: float) -> Check:
    """The check of programs run as scripts (``io`` tests, or one run without input)."""
    cases: Sequence[TestCase | None] = plan.tests if plan.mode == "io" else (None,)
    passed, behaviour, failure = 0, [], None
    for case, outcome in zip(cases, outcomes, strict=False):
        output, trace = split_trace(outcome.value or "")
        if case is None:
            good = outcome.status == "ok" and bool(output.strip())
        else:
            good = outcome.status == "ok" and _same_output(output, case.stdout or "")
        passed += good
        behaviour.append(f"{outcome.status}: {_normal(output)}\n{_last_line(trace)}")
        if not good and failure is None:
            failure = _run_failure(case, outcome, output, trace, timeout_s)
    if len(outcomes) < len(cases) and failure is None:
        failure = Failure("run", actual="the program did not run", status="error")
    return Check(passed, len(cases), tuple(behaviour), failure)


def _run_failure(
    case: TestCase | None, outcome: CallOutcome, output: str, trace: str, timeout_s: float
) -> Failure:
    if outcome.status == "timeout":
        happened = f"{output}\n(timed out after {timeout_s:g}s)".lstrip("\n")
    elif outcome.status == "error":
        why = trace or f"(the program exited with an error: {outcome.error or 'exit status'})\n"
        happened = output + why
    else:
        happened = output if output.strip() else "(the program printed nothing)"
    happened = happened.rstrip("\n")
    if case is None:
        return Failure("run", actual=happened, status=outcome.status)
    return Failure("input", case.stdin, case.stdout or "", happened, outcome.status)


def expected_value(test: str) -> str:
    """The right-hand side of ``assert <call> == <expected>`` ('' for other tests)."""
    try:
        tree = ast.parse(test)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return ""
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        return ""
    test_expr = tree.body[0].test
    if isinstance(test_expr, ast.Compare) and [type(op) for op in test_expr.ops] == [ast.Eq]:
        return ast.unparse(test_expr.comparators[0])
    return ""


def traced(code: str, name: str = "__main__") -> str:
    """``code`` as a program that prints :data:`TRACE_MARK` and the traceback of an uncaught
    exception to stdout (frames and line numbers of ``code`` only), then exits with 1.

    ``name`` is the program's ``__name__``: ``"__main__"`` runs it as a script, another name
    only loads it. Timeouts and ``SystemExit`` pass through unchanged.
    """
    return _TRACED.format(source=repr(code), mark=repr(TRACE_MARK), name=repr(name))


def split_trace(stdout: str) -> tuple[str, str]:
    """A traced program's stdout as (what the program printed, the traceback or '')."""
    output, mark, trace = stdout.rpartition(TRACE_MARK)
    return (output, trace) if mark else (stdout, "")


def _same_output(got: str, expected: str) -> bool:
    return _normal(got) == _normal(expected)


def _normal(text: str) -> str:
    """Output as ``io`` tests compare it: trailing spaces and trailing blank lines removed."""
    return "\n".join(line.rstrip() for line in text.split("\n")).rstrip("\n")


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


# ---------------------------------------------------------------------- what is repaired


def pick(behaviours: Sequence[tuple[str, ...] | None], limit: int | None) -> list[int]:
    """Which failing candidates to repair: one per behaviour group (its first member),
    largest groups first, then in input order; at most ``limit``. ``None`` marks a passing
    candidate (never repaired). Identical programs behave identically, so they share a group.
    """
    groups: dict[tuple[str, ...], list[int]] = {}
    for k, behaviour in enumerate(behaviours):
        if behaviour is not None:
            groups.setdefault(behaviour, []).append(k)
    ranked = sorted(groups.values(), key=lambda group: (-len(group), group[0]))
    chosen = [group[0] for group in ranked]
    return chosen if limit is None else chosen[:limit]


@dataclass(frozen=True)
class _Chain:
    """A program being repaired: the input candidate it descends from, its code, its check."""

    parent: int
    code: str
    check: Check


@dataclass(frozen=True)
class Repaired:
    """One repaired program, from round ``round`` of the chain of input ``parent``."""

    parent: int
    round: int
    code: str
    check: Check
    logprob: float | None = None


async def _repair(
    ctx: LayerContext, params: RepairParams, plan: Plan, chains: Sequence[_Chain]
) -> list[Repaired]:
    """Up to ``rounds`` rounds; a chain ends when its program passes or no program came back."""
    query = query_text(ctx.query)
    made: list[Repaired] = []
    warned = False
    for number in range(1, params.rounds + 1):
        fit = _calls_that_fit(ctx, len(chains))
        if fit < len(chains) and not warned:
            ctx.warn(
                f"the call budget allows {fit} of the {len(chains)} repairs of round {number};"
                " repaired no more"
            )
            warned = True
        chains = chains[:fit]
        if not chains:
            break
        results = await _round(ctx, params, plan, query, chains, number)
        made.extend(r for r in results if r is not None)
        chains = [
            _Chain(chain.parent, r.code, r.check)
            for chain, r in zip(chains, results, strict=True)
            if r is not None and not r.check.ok
        ]
    return made


def _calls_that_fit(ctx: LayerContext, planned: int) -> int:
    """How many of ``planned`` calls the query's budget still allows."""
    left = ctx.budget_left().calls
    return planned if left is None else max(0, min(planned, left))


async def _round(
    ctx: LayerContext,
    params: RepairParams,
    plan: Plan,
    query: str,
    chains: Sequence[_Chain],
    number: int,
) -> list[Repaired | None]:
    """One repair call per chain, then the repaired programs run (None: nothing new)."""
    failures = await gather_all([_detailed(ctx, params, plan, c) for c in chains])
    requests = [
        request(params.model, repair_messages(params, query, c.code, f), params)
        for c, f in zip(chains, failures, strict=True)
    ]
    responses = await complete_all(ctx, requests)
    programs = [parse_program(first_text(r)) for r in responses]
    unparsed = sum(p is None for p in programs)
    if unparsed:
        ctx.warn(f"{unparsed} of {len(chains)} repair replies held no program (round {number})")
    fresh = [
        p if p is not None and p.strip() != c.code.strip() else None
        for p, c in zip(programs, chains, strict=True)
    ]
    checks = await gather_all([_check(ctx, params, plan, p) for p in fresh if p is not None])
    found = iter(checks)
    return [
        None if p is None else Repaired(c.parent, number, p, next(found), first_logprob(response))
        for p, c, response in zip(fresh, chains, responses, strict=True)
    ]


async def _detailed(ctx: LayerContext, params: RepairParams, plan: Plan, chain: _Chain) -> Failure:
    """The chain's failure, with what a failed assert's calls returned, or the traceback of
    a program that does not load."""
    failure = chain.check.failure
    assert failure is not None  # only failing programs are repaired
    if failure.what == "test" and failure.status == "failed":
        calls = calls_in(failure.case, plan.entry)[:_MAX_CALLS]
        if not calls:
            return failure
        report = await ctx.run_calls(
            chain.code, calls, timeout_s=params.timeout_s, memory_mb=params.memory_mb
        )
        seen = [_returned(call, o) for call, o in zip(calls, report.outcomes, strict=False)]
        if failure.actual != "assertion failed":
            seen.append(f"(assertion message: {failure.actual})")
        return replace(failure, actual="\n".join(seen) or failure.actual)
    if failure.status == "setup":
        runs = await ctx.run_stdio(
            traced(chain.code, name="solution"),
            [""],
            timeout_s=params.timeout_s,
            memory_mb=params.memory_mb,
        )
        _, trace = split_trace(runs.outcomes[0].value or "") if runs.outcomes else ("", "")
        return replace(failure, actual=trace.strip()) if trace.strip() else failure
    return failure


_MAX_CALLS = 4
"""At most this many calls of a failed assert are re-run to show what they returned."""


def _returned(call: str, outcome: CallOutcome) -> str:
    if outcome.status == "ok":
        return f"{call} returned {outcome.value}"
    if outcome.status == "timeout":
        return f"{call} timed out"
    return f"{call} raised {outcome.error}"


# ---------------------------------------------------------------------- prompts and replies


def repair_messages(
    params: RepairParams, query: str, code: str, failure: Failure
) -> tuple[Message, ...]:
    """The messages of one repair call (everything shown is cut to its bound)."""
    tail = failure.status in ("error", "timeout", "setup")
    user = render(
        template(params.prompt, REPAIR_PROMPT),
        query=query,
        program=clip(code, PROGRAM_CHARS),
        feedback=feedback_text(failure),
        input=clip(failure.case, FIELD_CHARS),
        expected=clip(failure.expected, FIELD_CHARS),
        actual=clip(failure.actual, FIELD_CHARS, tail=tail),
    )
    return build_messages(user, system=params.system_prompt, default_system=SYSTEM_PROMPT)


def feedback_text(failure: Failure) -> str:
    """The ``{feedback}`` part of the prompt: what failed and how, each part bounded."""
    case, expected = clip(failure.case, FIELD_CHARS), clip(failure.expected, FIELD_CHARS)
    tail = failure.status in ("error", "timeout", "setup")
    actual = clip(failure.actual, FIELD_CHARS, tail=tail)
    if failure.what == "load":
        return f"It does not load:\n```\n{actual}\n```"
    if failure.what == "run":
        return f"Running it fails:\n```\n{actual}\n```"
    if failure.what == "input":
        return (
            f"It fails on this input:\n```\n{case.rstrip()}\n```\n\n"
            f"Expected output:\n```\n{expected.rstrip()}\n```\n\n"
            f"Actual output:\n```\n{actual}\n```"
        )
    parts = [f"It fails this test:\n```python\n{case}\n```"]
    if expected:
        parts.append(f"Expected: {expected}")
    parts.append(f"What happened:\n```\n{actual}\n```")
    return "\n\n".join(parts)


def clip(text: str, limit: int, *, tail: bool = False) -> str:
    """``text`` cut to ``limit`` characters, with a marker saying how much was cut: its
    start and its end are kept, or only its end (``tail=True``: the end of a traceback
    says the most)."""
    if len(text) <= limit:
        return text
    mark = f"[... {len(text) - limit} characters cut ...]"
    if tail:
        return f"{mark}\n{text[-limit:]}"
    head = limit // 2
    return f"{text[:head]}\n{mark}\n{text[len(text) - (limit - head) :]}"


def parse_program(text: str) -> str | None:
    """The program in a repair reply: its largest fenced block, or the whole reply when it
    has no fence and parses as Python; None when there is none."""
    code = extract_code(text)
    fenced = code != text.strip()  # extract_code returns the stripped text when unfenced
    if not fenced:
        try:
            ast.parse(code)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            return None
    return code if code.strip() else None


# ---------------------------------------------------------------------- output


def _assemble(
    node_id: str,
    params: RepairParams,
    signal: str,
    candidates: Sequence[Candidate],
    checks: Sequence[Check],
    repairs: Sequence[Repaired],
) -> tuple[Candidate, ...]:
    """Passing inputs, passing repairs, then the rest by share passed (see ``Repair``)."""
    inputs = [c.with_signal(signal, k.share) for c, k in zip(candidates, checks, strict=True)]
    made = [_repaired(node_id, params.model, signal, i, r) for i, r in enumerate(repairs)]
    passing = [c for c, k in zip(inputs, checks, strict=True) if k.ok]
    fixed = [c for c, r in zip(made, repairs, strict=True) if r.check.ok]
    failing = [c for c, k in zip(inputs, checks, strict=True) if not k.ok]
    still = [c for c, r in zip(made, repairs, strict=True) if not r.check.ok]
    if not params.include_original and (passing or made):
        failing = []
    rest = sorted([*failing, *still], key=lambda c: -(c.signal(signal) or 0.0))
    return (*passing, *fixed, *rest)


def _repaired(node_id: str, model: str, signal: str, index: int, repair: Repaired) -> Candidate:
    return Candidate(
        text=f"```python\n{repair.code}\n```",
        model=model,
        sample_index=index,
        source_node=node_id,
        logprob=repair.logprob,
        signals=(
            ("repair_of", float(repair.parent)),
            ("repair_round", float(repair.round)),
            (signal, repair.check.share),
        ),
    )
