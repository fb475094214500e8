"""``distinguish``: settle the top two behaviour groups on inputs that tell them apart (S*).

After execution agreement (``exec_vote``) the two largest groups of candidate programs often
both look plausible. Following S* (Li et al., arXiv 2502.14382), a model writes inputs on
which the two groups' representative programs return different results; both programs run
on them, and the inputs where the outputs really differ decide: by the query's own stated
examples when they separate the two programs, else by a judge that sees only the task, one
input and the two outputs (never the programs), one call per input, majority wins.

Sandbox use, through the context: ``ctx.run_calls`` (grouping on the query's example calls
and the given tests' calls, and the representatives on the written inputs) and
``ctx.run_tests`` (the stated examples). Function-call tasks only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Literal

from pydantic import Field

from archon.layers._calls import candidates_of, complete_all, first_text, given_tests, request
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
from archon.layers.exec_vote import Key, agree, group_behaviours, outcome_key, parse_call_inputs
from archon.layers.prompts import build_messages, query_text, render, template
from archon.values import Candidate, Candidates, Message, Payload, TestCase, Tests

SYSTEM_PROMPT = (
    "You write test inputs that reveal where two programs behave differently. You never"
    " write expected outputs."
)
"""Default system prompt of the input writer."""

INPUTS_PROMPT = """Two programs were written for the task below, and they may behave
differently. Write {n} different inputs on which the two programs return different results.

Task:
{query}

Program A:
```python
{program_a}
```

Program B:
```python
{program_b}
```

Each input is one call of the Python function {function} with literal arguments, on its own
line, for example
{example}
Write only the calls, without expected results, inside one ```python block."""
"""The input writer (``{query}``, ``{n}``, ``{function}``, ``{example}``, ``{program_a}``,
``{program_b}``)."""

JUDGE_SYSTEM_PROMPT = (
    "You are a careful, impartial judge of program outputs. The order of the outputs does"
    " not matter."
)
"""Default system prompt of the judge."""

JUDGE_PROMPT = """Two programs written for the task below return different results on the
same input. Which result is correct for this input, according to the task?

Task:
{query}

Input:
{input}

Output A:
{output_a}

Output B:
{output_b}

Work out the correct result for this input from the task, then end with one line of the
form "Verdict: A" or "Verdict: B"."""
"""The judge, one call per differing input (``{query}``, ``{input}``, ``{output_a}``,
``{output_b}``)."""

SIGNAL = "distinguish_won"
UPSTREAM_SIGNAL = "exec_agreement"
"""Candidates carrying it come from ``exec_vote``: its order and groups are kept."""
MAX_SHARED_INPUTS = 24
"""At most this many shared inputs (stated calls, then the tests' calls) group the programs."""
SHOWN_CHARS = 1000
"""Each input and output is shown to the judge up to this many characters."""

_VERDICT = re.compile(r"(?i:verdict)[\s:=*_`\"'(\[]*(?i:output\s+)?([AB])\b")
_BARE = re.compile(r"\W*(?i:output\s+)?([AB])\W*")


class DistinguishParams(SamplingParams):
    """Who writes the distinguishing inputs, who judges, and when to try at all."""

    model: str = Field(min_length=1)
    """Writes ``num_inputs`` inputs on which the two representatives differ (one call)."""
    judge: str | None = Field(None, min_length=1)
    """Judges the outputs on each differing input (default: ``model``)."""
    num_inputs: int = Field(3, ge=1, le=10)
    margin: int = Field(0, ge=0, le=1024)
    """Skip when the top group outnumbers the second by at least this many (0: never skip)."""
    temperature: float | None = Field(0.0, ge=0.0, le=2.0)
    judge_prompt: str | None = None
    """Override of the judge's prompt (placeholders ``{query}``, ``{input}``,
    ``{output_a}``, ``{output_b}``)."""
    judge_system_prompt: str | None = None
    timeout_s: float = Field(5.0, gt=0.0, le=600.0)
    memory_mb: int = Field(512, ge=16, le=65536)


class Distinguish(Layer[DistinguishParams]):
    """Decide between the two leading behaviour groups on inputs that tell them apart.

    The same candidates come out, the winning group first (members in input order), then
    the rest in input order; the two groups' members get ``distinguish_won`` (1 for the
    winners, 0 for the losers). Without a decision the input order is kept, unsigned.
    """

    kind: ClassVar[str] = "distinguish"
    Params = DistinguishParams
    consumes = (Candidates, Tests)
    optional_inputs = (Tests,)
    produces = Candidates
    prompts = MappingProxyType(
        {
            "system": SYSTEM_PROMPT,
            "inputs": INPUTS_PROMPT,
            "judge_system": JUDGE_SYSTEM_PROMPT,
            "judge": JUDGE_PROMPT,
        }
    )

    @classmethod
    def estimate(
        cls, params: DistinguishParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        candidates = flows_of(inputs, Candidates)
        n, tokens = total_items(candidates), max_tokens_of(candidates)
        output = Flow(items=n, tokens=tokens)
        if n < 2:
            return LayerEstimate(output=output)
        calls = params.num_inputs
        writer_in = prompt_tokens(query_tokens, 2 * tokens, len(INPUTS_PROMPT) // 4)
        judge_in = prompt_tokens(query_tokens, (3 * SHOWN_CHARS + len(JUDGE_PROMPT)) // 4)
        judge = params.judge or params.model
        if judge == params.model:  # one model writes and judges
            tokens_in, tokens_out = writer_in + calls * judge_in, (1 + calls) * params.max_tokens
            return LayerEstimate(
                output=output, calls=(CallEstimate(judge, 1 + calls, tokens_in, tokens_out),)
            )
        return LayerEstimate(
            output=output,
            calls=(
                CallEstimate(params.model, 1, writer_in, params.max_tokens),
                CallEstimate(judge, calls, calls * judge_in, calls * params.max_tokens),
            ),
        )

    async def run(
        self, ctx: LayerContext, params: DistinguishParams, inputs: Sequence[Payload]
    ) -> Payload:
        candidates = candidates_of(inputs)
        task = _task(ctx, inputs)
        groups = await _groups(ctx, params, task, candidates)
        if len(groups) < 2 or _clear_lead(groups, params.margin):
            return Candidates(items=candidates)
        if task.entry is None:
            ctx.warn(
                "no function to call (distinguish handles function tasks only); kept the order"
            )
            return Candidates(items=candidates)
        first, second = (extract_code(candidates[group[0]].text) for group in groups[:2])
        winner = await _decide(ctx, params, task, (first, second))
        if winner is None:
            return Candidates(items=candidates)
        return Candidates(items=reordered(candidates, groups[winner], groups[1 - winner]))


# ---------------------------------------------------------------------- task and groups


@dataclass(frozen=True)
class _Task:
    """What the query and the given tests say: the function, shared inputs, stated tests."""

    query: str
    entry: str | None
    calls: tuple[str, ...]
    tests: tuple[TestCase, ...]


def _task(ctx: LayerContext, inputs: Sequence[Payload]) -> _Task:
    """The function the task asks for, the calls that group the programs, the stated tests."""
    query = query_text(ctx.query)
    stated = extract(query)
    given = [t.text for t in given_tests(inputs) if t.kind == "code"]
    entry = stated.entry or next(
        (call.partition("(")[0] for test in given for call in calls_in(test)), None
    )
    found = [*stated.calls, *(c for test in given for c in calls_in(test, entry))]
    calls = tuple(dict.fromkeys(found))[:MAX_SHARED_INPUTS] if entry is not None else ()
    tests = tuple(t for t in stated.tests if t.kind == "code")
    return _Task(query, entry, calls, tests)


async def _groups(
    ctx: LayerContext, params: DistinguishParams, task: _Task, candidates: Sequence[Candidate]
) -> list[tuple[int, ...]]:
    """Candidate indices per behaviour group, leading group first.

    A candidate's behaviour: its outcomes on the shared calls, else (no shared call, no
    upstream group) its extracted code; candidates an upstream ``exec_vote`` put in groups of
    different shares stay apart. Upstream candidates keep their given order; others go by
    group size. Groups that return on no shared call are left out: they cannot win.
    """
    upstream = any(c.signal(UPSTREAM_SIGNAL) is not None for c in candidates)
    keys: list[list[Key]] = []
    for candidate in candidates:
        key = await _behaviour(ctx, params, task, candidate) if task.calls else []
        if upstream:
            key.append(("share", repr(candidate.signal(UPSTREAM_SIGNAL))))
        elif not task.calls:
            key.append(("ok", extract_code(candidate.text)))
        keys.append(key)
    if upstream:
        groups = [tuple(g) for g in group_behaviours(keys)]
    else:
        result = agree(keys)
        groups = [result.groups[g] for g in dict.fromkeys(result.group_of[k] for k in result.order)]
    return [g for g in groups if not task.calls or any(key[0] == "ok" for key in keys[g[0]])]


async def _behaviour(
    ctx: LayerContext, params: DistinguishParams, task: _Task, candidate: Candidate
) -> list[Key]:
    """The candidate's outcome on each shared call."""
    report = await ctx.run_calls(
        extract_code(candidate.text),
        task.calls,
        timeout_s=params.timeout_s,
        memory_mb=params.memory_mb,
    )
    return [outcome_key(o.status, o.value, o.error) for o in report.outcomes]


def _clear_lead(groups: Sequence[Sequence[int]], margin: int) -> bool:
    """Whether the leading group outnumbers the second by ``margin`` or more (0: never)."""
    return margin > 0 and len(groups[0]) - len(groups[1]) >= margin


def reordered(
    candidates: Sequence[Candidate], winners: Sequence[int], losers: Sequence[int]
) -> tuple[Candidate, ...]:
    """The winners first, then the rest, each in input order, with ``distinguish_won``."""
    won, lost = set(winners), set(losers)
    rest = [k for k in range(len(candidates)) if k not in won]
    order = [*sorted(won), *rest]
    return tuple(
        candidates[k].with_signal(SIGNAL, float(k in won)) if k in won | lost else candidates[k]
        for k in order
    )


# ---------------------------------------------------------------------- deciding


@dataclass(frozen=True)
class Difference:
    """One input on which the two representatives differ, and what each gave (as shown)."""

    call: str
    outputs: tuple[str, str]


async def _decide(
    ctx: LayerContext, params: DistinguishParams, task: _Task, codes: tuple[str, str]
) -> int | None:
    """The winning group (0: the leading one, 1: the second), or None when undecided.

    The stated examples decide first, without a model call, when the two programs pass a
    different number of them; otherwise the judge decides on the written inputs.
    """
    if task.tests:
        passed = [await _stated_passed(ctx, params, task, code) for code in codes]
        if passed[0] != passed[1]:
            return 0 if passed[0] > passed[1] else 1
    calls = await _write_inputs(ctx, params, task, codes)
    if not calls:
        ctx.warn("no inputs could be parsed from the input writer's reply; kept the order")
        return None
    differences = await _differences(ctx, params, codes, calls)
    if not differences:
        ctx.warn(
            f"none of the {len(calls)} written inputs tells the programs apart; kept the order"
        )
        return None
    return await _judge(ctx, params, task, differences)


async def _stated_passed(
    ctx: LayerContext, params: DistinguishParams, task: _Task, code: str
) -> int:
    """How many of the query's stated examples ``code`` passes."""
    report = await ctx.run_tests(
        code, task.tests, timeout_s=params.timeout_s, memory_mb=params.memory_mb
    )
    return report.passed


async def _write_inputs(
    ctx: LayerContext, params: DistinguishParams, task: _Task, codes: tuple[str, str]
) -> list[str]:
    """Calls of the entry function the writer expects the programs to disagree on."""
    entry = task.entry or "solve"
    example = task.calls[0] if task.calls else f"{entry}(1, [2, 3])"
    user = render(
        template(params.prompt, INPUTS_PROMPT),
        query=task.query,
        n=params.num_inputs,
        function=f"`{entry}`",
        example=f"`{example}`",
        program_a=codes[0],
        program_b=codes[1],
    )
    messages = build_messages(user, system=params.system_prompt, default_system=SYSTEM_PROMPT)
    (response,) = await complete_all(ctx, [request(params.model, messages, params)])
    return parse_call_inputs(first_text(response), task.entry)[: params.num_inputs]


async def _differences(
    ctx: LayerContext, params: DistinguishParams, codes: tuple[str, str], calls: Sequence[str]
) -> list[Difference]:
    """The calls on which the two programs' outcomes really differ."""
    reports = [
        await ctx.run_calls(code, calls, timeout_s=params.timeout_s, memory_mb=params.memory_mb)
        for code in codes
    ]
    found = []
    for call, a, b in zip(calls, reports[0].outcomes, reports[1].outcomes, strict=False):
        if outcome_key(a.status, a.value, a.error) != outcome_key(b.status, b.value, b.error):
            shown = (
                shown_outcome(a.status, a.value, a.error),
                shown_outcome(b.status, b.value, b.error),
            )
            found.append(Difference(call, shown))
    return found


def shown_outcome(status: str, value: str | None, error: str | None) -> str:
    """An outcome as the judge reads it: the value, the exception raised, or the time-out."""
    if status == "ok":
        return _clip(value or "")
    if status == "timeout":
        return "(does not finish within the time limit)"
    return f"(raises {error or 'an exception'})"


def _clip(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + " ...(cut)"


async def _judge(
    ctx: LayerContext, params: DistinguishParams, task: _Task, differences: Sequence[Difference]
) -> int | None:
    """Majority of the judge's verdicts, one call per difference; ties give None.

    The leading group's output is shown first on alternate inputs, starting at random, so
    a judge that favours one position cannot decide alone.
    """
    start = ctx.rng.randrange(2)
    swaps = [(k + start) % 2 == 1 for k in range(len(differences))]
    model = params.judge or params.model
    requests = [
        request(model, _judge_messages(params, task, d, swap), params)
        for d, swap in zip(differences, swaps, strict=True)
    ]
    verdicts = [parse_verdict(first_text(r)) for r in await complete_all(ctx, requests)]
    votes = [0, 0]
    for verdict, swap in zip(verdicts, swaps, strict=True):
        if verdict is not None:
            votes[(verdict == "B") != swap] += 1
    unread = verdicts.count(None)
    if unread:
        ctx.warn(f"{unread} of {len(verdicts)} judge replies gave no verdict (A or B)")
    if votes[0] == votes[1]:
        return None
    return 0 if votes[0] > votes[1] else 1


def _judge_messages(
    params: DistinguishParams, task: _Task, difference: Difference, swap: bool
) -> tuple[Message, ...]:
    """The judge's messages: the task, the input and the two outputs (no program)."""
    output_a, output_b = difference.outputs[::-1] if swap else difference.outputs
    user = render(
        template(params.judge_prompt, JUDGE_PROMPT),
        query=task.query,
        input=_clip(difference.call),
        output_a=output_a,
        output_b=output_b,
    )
    return build_messages(
        user, system=params.judge_system_prompt, default_system=JUDGE_SYSTEM_PROMPT
    )


def parse_verdict(text: str) -> Literal["A", "B"] | None:
    """``"A"`` or ``"B"`` from a judge reply: its last ``Verdict:`` mark, or a bare letter."""
    marks = _VERDICT.findall(text)
    bare = _BARE.fullmatch(text.strip())
    letter = str(marks[-1]) if marks else (bare.group(1) if bare else None)
    return "A" if letter == "A" else "B" if letter == "B" else None
