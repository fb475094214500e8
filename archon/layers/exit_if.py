"""``exit_if``: per-query early exit, once the evidence is in.

A gate between stages: the nodes written after it run only when its condition does *not*
hold for the current query; when it holds, they are skipped and the candidates the gate
read (passed through unchanged, best first) are the pipeline's answer. Easy queries then
cost the first stage only, hard ones the whole pipeline.

Conditions, all on the *leading* (first) candidate of the gate's input:

* ``tests_pass``: it passes at least ``threshold`` (default: all) of the tests: the
  examples the query states itself plus the gate's ``Tests`` inputs, run in the sandbox;
  with fewer than ``min_tests`` tests the gate never exits (no evidence, no exit);
* ``agreement``: its ``exec_agreement`` or ``vote_share`` signal (the share of candidates
  that behave or answer like it) is at least ``threshold``;
* ``score``: its ``score`` (a verifier's, a ranker's or a combiner's) is at least
  ``threshold``;
* ``signal``: its signal named ``signal`` is at least ``threshold``.

No model call; ``tests_pass`` runs one program in the sandbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from archon.layers._calls import candidates_of, given_tests
from archon.layers._query_examples import extract
from archon.layers.answers import extract_code
from archon.layers.base import (
    ExitDecision,
    Flow,
    Gate,
    LayerContext,
    LayerEstimate,
    LayerParams,
    flows_of,
    max_tokens_of,
    total_items,
)
from archon.layers.prompts import query_text
from archon.values import Candidate, Candidates, Payload, TestCase, Tests

Condition = Literal["tests_pass", "agreement", "score", "signal"]

AGREEMENT_SIGNALS = ("exec_agreement", "vote_share")
"""The signals ``agreement`` reads, in order of preference."""


class ExitIfParams(LayerParams):
    """The condition that ends the pipeline for this query (see the module docstring)."""

    when: Condition = "tests_pass"
    threshold: float = Field(1.0, ge=0.0)
    """``tests_pass``: the share of tests the leading candidate must pass; otherwise the
    least value of the agreement, score or signal."""
    signal: str | None = None
    """The signal ``when = "signal"`` reads (e.g. ``"judge"``, ``"tests_passed"``)."""
    min_tests: int = Field(1, ge=1, le=1000)
    """``tests_pass``: with fewer tests than this the gate never exits."""
    timeout_s: float = Field(5.0, gt=0.0, le=600.0)
    memory_mb: int = Field(512, ge=16, le=65536)

    @model_validator(mode="after")
    def _signal_named(self) -> ExitIfParams:
        if self.when == "signal" and not self.signal:
            raise ValueError('when = "signal" needs the signal to read: signal = "<name>"')
        if self.when != "signal" and self.signal is not None:
            raise ValueError('signal is read only with when = "signal"')
        if self.when in ("tests_pass", "agreement") and self.threshold > 1.0:
            raise ValueError(f"threshold is a share for when = {self.when!r}: at most 1.0")
        return self


class ExitIf(Gate[ExitIfParams]):
    """Stop the pipeline for this query when the leading candidate meets a condition.

    The later stages (the nodes written after this one) wait for the decision; the trace
    of the run names the gate that fired and the nodes it skipped.
    """

    kind: ClassVar[str] = "exit_if"
    Params = ExitIfParams
    consumes = (Candidates, Tests)
    optional_inputs = (Tests,)
    produces = Candidates

    @classmethod
    def estimate(
        cls, params: ExitIfParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        candidates = flows_of(inputs, Candidates)
        return LayerEstimate(
            output=Flow(items=total_items(candidates), tokens=max_tokens_of(candidates))
        )

    async def gate(
        self, ctx: LayerContext, params: ExitIfParams, inputs: Sequence[Payload]
    ) -> tuple[Payload, ExitDecision]:
        candidates = candidates_of(inputs)
        output = Candidates(items=candidates)
        if not candidates:
            return output, ExitDecision(False, "no candidate to judge")
        leading = candidates[0]
        if params.when == "tests_pass":
            leading, decision = await _tests_pass(ctx, params, leading, inputs)
            output = Candidates(items=(leading, *candidates[1:]))
            return output, decision
        return output, _signal_decision(params, leading)


async def _tests_pass(
    ctx: LayerContext, params: ExitIfParams, leading: Candidate, inputs: Sequence[Payload]
) -> tuple[Candidate, ExitDecision]:
    tests = _runnable_tests(ctx, inputs)
    if len(tests) < params.min_tests:
        why = f"{len(tests)} runnable test(s), fewer than min_tests = {params.min_tests}"
        return leading, ExitDecision(False, why)
    report = await ctx.run_tests(
        extract_code(leading.text), tests, timeout_s=params.timeout_s, memory_mb=params.memory_mb
    )
    share = report.passed / len(tests)
    leading = leading.with_signal("tests_passed", share)
    verdict = share >= params.threshold
    return leading, ExitDecision(verdict, f"leading candidate passes {report.passed}/{len(tests)}")


def _runnable_tests(ctx: LayerContext, inputs: Sequence[Payload]) -> list[TestCase]:
    """The query's stated examples and the given tests that can run (code and io)."""
    stated = extract(query_text(ctx.query)).tests
    given = given_tests(inputs)
    return [t for t in dict.fromkeys([*stated, *given]) if t.kind in ("code", "io")]


def _signal_decision(params: ExitIfParams, leading: Candidate) -> ExitDecision:
    if params.when == "score":
        value, name = leading.score, "score"
    elif params.when == "agreement":
        name = next((s for s in AGREEMENT_SIGNALS if leading.signal(s) is not None), "agreement")
        value = leading.signal(name)
    else:
        assert params.signal is not None
        name, value = params.signal, leading.signal(params.signal)
    if value is None:
        return ExitDecision(False, f"the leading candidate has no {name}")
    verdict = value >= params.threshold
    relation = ">=" if verdict else "<"
    return ExitDecision(verdict, f"leading {name} {value:.3g} {relation} {params.threshold:g}")
