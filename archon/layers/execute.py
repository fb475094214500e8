"""``execute``: run each candidate's program in the sandbox; what it prints becomes the answer.

Program-of-thought (Chen et al., 2022) and PAL (Gao et al., 2022): instead of asking a model
to compute, ask it to write a program that prints the answer, and let the interpreter do the
arithmetic. A small coder model that adds 7-digit numbers wrongly in prose writes
``print(1234567 + 7654321)`` correctly. Followed by ``vote``, the candidates agree on executed
results rather than on the model's arithmetic (self-consistency over programs).

Each candidate's code (the first fenced block, or the whole text) runs once, with empty stdin,
through ``ctx.run_stdio`` (:func:`archon.sandbox.run_stdio`: an isolated subprocess
with time and memory limits and no network; 0 model calls). A candidate whose program exits 0
and prints something keeps its provenance and gets the printed text (stripped) as its new
text and the signal ``executed = 1``; the others are dropped, or kept unchanged with
``executed = 0`` when ``on_failure = "keep"``. When no program runs, the input candidates pass
through unchanged and a warning says why, so a pipeline never ends with nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from archon.layers._calls import candidates_of, gather_all
from archon.layers.answers import extract_code
from archon.layers.base import Flow, Layer, LayerContext, LayerEstimate, LayerParams
from archon.values import Candidate, Candidates, Payload

if TYPE_CHECKING:
    from archon.sandbox import CallOutcome

MAX_ANSWER_CHARS = 2000
"""Printed output kept as the answer (longer output is cut: an answer is short)."""


class ExecuteParams(LayerParams):
    """Sandbox limits per program, and what happens to a program that fails."""

    timeout_s: float = Field(5.0, gt=0, le=60)
    memory_mb: int = Field(512, ge=64, le=4096)
    on_failure: Literal["drop", "keep"] = "drop"


class Execute(Layer[ExecuteParams]):
    """Replace each candidate by what its program prints (program-of-thought)."""

    kind: ClassVar[str] = "execute"
    Params = ExecuteParams
    consumes = (Candidates,)
    produces = Candidates

    @classmethod
    def estimate(
        cls, params: ExecuteParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        items = sum(flow.items for flow in inputs)
        return LayerEstimate(output=Flow(items=items, tokens=MAX_ANSWER_CHARS // 4))

    async def run(
        self, ctx: LayerContext, params: ExecuteParams, inputs: Sequence[Payload]
    ) -> Payload:
        candidates = candidates_of(inputs)
        if not candidates:
            return Candidates()
        # One gather over coroutines: no task outlives run(); the context bounds how many
        # programs run at once.
        reports = await gather_all(
            [
                ctx.run_stdio(
                    extract_code(c.text),
                    [""],
                    timeout_s=params.timeout_s,
                    memory_mb=params.memory_mb,
                )
                for c in candidates
            ]
        )
        outputs = [_printed(report.outcomes[0] if report.outcomes else None) for report in reports]
        return Candidates(items=_answers(ctx, candidates, outputs, params.on_failure))


def _printed(outcome: CallOutcome | None) -> str | None:
    """The stripped output of a program that exited 0 and printed something, else None."""
    if outcome is None or outcome.status != "ok":
        return None
    printed = (outcome.value or "").strip()
    return printed[:MAX_ANSWER_CHARS] if printed else None


def _answers(
    ctx: LayerContext,
    candidates: Sequence[Candidate],
    outputs: Sequence[str | None],
    on_failure: str,
) -> tuple[Candidate, ...]:
    """Candidates carrying their programs' outputs (pure: tested without a sandbox)."""
    ran = [
        c.model_copy(update={"text": out}).with_signal("executed", 1.0)
        for c, out in zip(candidates, outputs, strict=True)
        if out is not None
    ]
    failed = len(candidates) - len(ran)
    if not ran:
        ctx.warn(
            f"none of the {len(candidates)} programs ran and printed an answer;"
            " kept the candidates unchanged"
        )
        return tuple(candidates)
    if failed:
        ctx.warn(f"{failed} of {len(candidates)} programs failed or printed nothing")
    if on_failure == "drop":
        return tuple(ran)
    kept = iter(ran)
    return tuple(
        next(kept) if out is not None else c.with_signal("executed", 0.0)
        for c, out in zip(candidates, outputs, strict=True)
    )
