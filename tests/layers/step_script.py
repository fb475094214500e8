"""A scripted step model for the step-level search tests, with known step scores.

Expansions answer ``Step k: idea <seed>.`` (distinct per sample), and ``The answer is 42.``
from step ``final_at`` on; every step's score is a fixed function of its text
(:func:`step_score`), reported as the step's logprob (``logprob`` scorer) and as P(Yes) of
``score_only`` self-evaluations (``self_eval`` scorer).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Callable
from typing import Any

from archon.ir import Budget
from archon.layers.base import Layer, LayerParams
from archon.runtime import Limits, RunResult, run
from archon.runtime.clients.fake import ScriptedClient
from archon.testing import LayerContract
from archon.values import CompletionRequest

DELIMITER = "\n\n"


def step_score(step: str) -> float:
    """A deterministic score in [0.05, 0.95] for a step's text."""
    digest = hashlib.sha256(step.encode()).digest()
    return 0.05 + 0.9 * int.from_bytes(digest[:4], "big") / 2**32


def is_judge(request: CompletionRequest) -> bool:
    return any("Partial solution" in m.content for m in request.messages)


def steps_before(request: CompletionRequest) -> int:
    return (request.assistant_prefix or "").count(DELIMITER)


def judged_steps(request: CompletionRequest) -> list[str]:
    """The steps a self-evaluation request shows."""
    text = request.messages[-1].content
    body = text.split("Partial solution:\n", 1)[1].rsplit("\n\nIs every step", 1)[0]
    return body.split(DELIMITER)


def make_reply(final_at: int = 3) -> Callable[[CompletionRequest], str]:
    def reply(request: CompletionRequest) -> str:
        if is_judge(request):
            return "Yes" if step_score(judged_steps(request)[-1]) >= 0.5 else "No"
        n = steps_before(request) + 1
        if n >= final_at:
            return "The answer is 42."
        return f"Step {n}: idea {request.seed}.{DELIMITER}Ignored after the delimiter."

    return reply


def logprob(request: CompletionRequest, text: str) -> float | None:
    """The step's logprob for expansions, log P(Yes) for score_only self-evaluations."""
    if request.score_only:
        return math.log(step_score(judged_steps(request)[-1]))
    if is_judge(request):
        return math.log(0.9)
    return math.log(step_score(text.strip()))


def step_client(final_at: int = 3, **options: Any) -> ScriptedClient:
    return ScriptedClient(make_reply(final_at), logprob=logprob, **options)


def run_layer(
    layer: type[Layer],
    params: LayerParams,
    client: ScriptedClient,
    *,
    budget: Budget | None = None,
    seed: int = 0,
    retries: int = 0,
    query: str = LayerContract.query,
) -> RunResult:
    """Run one step-search node through the real runtime (optionally under a budget)."""

    class Runner(LayerContract):
        pass

    Runner.layer = layer
    Runner.params = params
    runner = Runner()
    pipeline = runner.pipeline(())
    if budget is not None:
        pipeline = pipeline.model_copy(update={"budget": budget})
    return asyncio.run(
        run(
            pipeline,
            query,
            client=client,
            registry=runner.registry(),
            limits=Limits(retries=retries, timeout_s=10.0, backoff_s=0.01),
            seed=seed,
        )
    )
