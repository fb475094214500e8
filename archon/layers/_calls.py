"""Helpers shared by the built-in layers: concurrent calls without tasks, request building.

Private to the package (the leading underscore keeps it out of the kind scan).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from archon.layers.base import CallEstimate, Flow, LayerContext, LayerEstimate, max_tokens_of
from archon.layers.common import EnsembleParams, JudgeParams, SamplingParams
from archon.values import (
    Candidate,
    Candidates,
    Completion,
    CompletionRequest,
    CompletionResponse,
    Message,
    Payload,
    TestCase,
    Tests,
)

T = TypeVar("T")


async def complete_all(
    ctx: LayerContext, requests: Sequence[CompletionRequest]
) -> list[CompletionResponse]:
    """Send ``requests`` concurrently through ``ctx`` and return the responses in order."""
    return await gather_all([ctx.complete(request) for request in requests])


async def gather_all(coroutines: Sequence[Awaitable[T]]) -> list[T]:
    """Await ``coroutines`` concurrently and return their results in order.

    One ``asyncio.gather`` over coroutines: the layer creates no task of its own, every
    one is awaited before this returns (none is left running), and cancelling the caller
    cancels them all. The first failure is re-raised after the others have finished.
    """
    import asyncio  # here: importing the layers to compile a pipeline needs no event loop

    if not coroutines:
        return []
    results = await asyncio.gather(*coroutines, return_exceptions=True)
    out: list[T] = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        out.append(result)
    return out


def ensemble(models: Sequence[str], samples: int) -> list[tuple[str, int]]:
    """Each distinct model of ``models`` with its total sample count, in first-listed order.

    Archon's configs list a model several times to sample it more. A model listed ``k``
    times is sampled ``k * samples`` times as one model, so its samples get distinct
    indices (seeds, cache entries) rather than ``k`` identical copies of the same samples.
    """
    counts = Counter(models)
    return [(model, counts[model] * samples) for model in dict.fromkeys(models)]


def first_text(response: CompletionResponse) -> str:
    """The text of the first completion ('' when the model returned none)."""
    return response.completions[0].text if response.completions else ""


def first_logprob(response: CompletionResponse) -> float | None:
    """The mean token log-probability of the first completion, when reported."""
    return response.completions[0].logprob if response.completions else None


def request(
    model: str,
    messages: tuple[Message, ...],
    params: SamplingParams,
    *,
    n: int = 1,
    logprobs: bool = False,
) -> CompletionRequest:
    """A request carrying the layer's sampling knobs (stop strings and ``stop_after_code``
    included)."""
    return CompletionRequest(
        model=model,
        messages=messages,
        n=n,
        temperature=params.temperature,
        top_p=params.top_p,
        max_tokens=params.max_tokens,
        seed=params.seed,
        stop=params.stop,
        stop_after_code=params.stop_after_code,
        logprobs=logprobs,
    )


def judge_request(
    params: JudgeParams, messages: tuple[Message, ...], *, logprobs: bool = False
) -> CompletionRequest:
    """One judge call with the layer's model and sampling knobs."""
    return request(params.model, messages, params, logprobs=logprobs)


def candidates_of(inputs: Sequence[Payload]) -> tuple[Candidate, ...]:
    """Every candidate of every ``Candidates`` input, in input order."""
    return tuple(c for payload in inputs if isinstance(payload, Candidates) for c in payload.items)


def tests_of(inputs: Sequence[Payload]) -> tuple[Tests, ...]:
    """Every ``Tests`` input, in input order."""
    return tuple(payload for payload in inputs if isinstance(payload, Tests))


def given_tests(inputs: Sequence[Payload]) -> tuple[TestCase, ...]:
    """Every test of every ``Tests`` input, in input order."""
    return tuple(test for payload in tests_of(inputs) for test in payload.items)


def sampled(ctx: LayerContext, model: str, index: int, completion: Completion) -> Candidate:
    """A candidate sampled by this node: sample ``index`` of ``model``."""
    return Candidate(
        text=completion.text,
        model=model,
        sample_index=index,
        source_node=ctx.node_id,
        logprob=completion.logprob,
    )


def ensemble_estimate(params: EnsembleParams, per_call_in: int) -> LayerEstimate:
    """``params.samples`` calls per model of ``params.models``, of ``per_call_in`` prompt
    tokens each, one candidate per call."""
    samples = params.samples
    calls = tuple(
        CallEstimate(model, samples, samples * per_call_in, samples * params.max_tokens)
        for model in params.models
    )
    return LayerEstimate(
        output=Flow(items=len(params.models) * samples, tokens=params.max_tokens), calls=calls
    )


def top(items: Sequence[T], top_k: int | None) -> tuple[T, ...]:
    """The first ``top_k`` of ``items`` (all of them when ``top_k`` is None)."""
    return tuple(items if top_k is None else items[:top_k])


def kept(n: int, top_k: int | None) -> int:
    """How many of ``n`` items :func:`top` keeps."""
    return n if top_k is None else min(n, top_k)


def reorder_estimate(inputs: Sequence[Flow], top_k: int | None) -> LayerEstimate:
    """The estimate of a kind that only reorders (and cuts) its input candidates, no call."""
    n = sum(flow.items for flow in inputs)
    return LayerEstimate(output=Flow(items=kept(n, top_k), tokens=max_tokens_of(inputs)))
