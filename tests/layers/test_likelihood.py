"""likelihood: the contract, ordering by scored log-probability, and backend fallbacks."""

from __future__ import annotations

import math
from typing import Any

import pytest

from archon.layers.base import Flow
from archon.layers.likelihood import Likelihood, LikelihoodParams, scored_logprob
from archon.runtime.clients.base import ModelCallError
from archon.runtime.clients.fake import ScriptedClient
from archon.runtime.executor import NodeFailed
from archon.testing import LayerContract
from archon.values import Candidates, Completion, CompletionRequest, CompletionResponse, Usage

LOGPROBS = {"Candidate 1": -2.0, "Candidate 2": -0.1, "Candidate 3": -1.0, "Candidate 4": -0.5}


class ScoringClient(ScriptedClient):
    """A fake backend that honours ``score_only``: a log-probability per candidate text."""

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        response = await super().complete(request)
        if not request.score_only:
            return response
        prefix = request.assistant_prefix or ""
        logprob = next((v for k, v in LOGPROBS.items() if prefix.startswith(k)), -3.0)
        usage = Usage(calls=1, prompt_tokens=response.usage.prompt_tokens)
        return CompletionResponse(completions=(Completion(text="", logprob=logprob),), usage=usage)


class TestLikelihoodContract(LayerContract):
    layer = Likelihood
    params = LikelihoodParams(model="small", top_k=3)
    parses_output = False

    def make_client(self, **options: Any) -> ScriptedClient:
        return ScoringClient(list(self.script), **options)


def _run(params: LikelihoodParams, n: int, client: ScriptedClient) -> tuple[Candidates, Any]:
    contract = TestLikelihoodContract()
    contract.params = params  # type: ignore[misc]
    result = contract.run_sync(n, client)
    assert isinstance(result.output, Candidates)
    return result.output, result


def test_orders_by_mean_token_logprob_and_records_the_signal() -> None:
    client = ScoringClient()
    output, result = _run(LikelihoodParams(model="small"), 4, client)
    assert [c.text.split(":")[0] for c in output.items] == [
        "Candidate 2",
        "Candidate 4",
        "Candidate 3",
        "Candidate 1",
    ]
    assert [c.signal("logprob") for c in output.items] == [-0.1, -0.5, -1.0, -2.0]
    assert math.isclose(output.items[0].score or 0.0, math.exp(-0.1))
    assert client.calls == 4 and not [w for w in result.warnings if "under_test" in w]


def test_requests_score_the_candidate_as_the_reply_to_the_query() -> None:
    client = ScoringClient()
    params = LikelihoodParams(model="small", prompt="Solve: {query}", system_prompt="Be exact.")
    _run(params, 2, client)
    request = client.requests[0]
    assert request.score_only and request.assistant_prefix == "Candidate 1: the answer is 40."
    assert [m.role for m in request.messages] == ["system", "user"]
    assert request.messages[0].content == "Be exact."
    assert request.messages[1].content == "Solve: What is 6 times 7? Answer with a number."


def test_a_backend_that_cannot_score_keeps_the_input_order_with_one_warning() -> None:
    def refuse(request: CompletionRequest) -> BaseException:
        return ModelCallError("prompt log-probabilities are not implemented", retryable=False)

    client = ScoringClient(fail_first=99, failure=refuse)
    output, result = _run(LikelihoodParams(model="server"), 3, client)
    assert [c.text.split(":")[0] for c in output.items] == [
        "Candidate 1",
        "Candidate 2",
        "Candidate 3",
    ]
    assert all(c.signal("logprob") is None for c in output.items)
    warnings = [w for w in result.warnings if "under_test" in w]
    assert len(warnings) == 1 and "could not score 3 of 3" in warnings[0]


class IgnoresScoreOnly(ScriptedClient):
    """A backend that ignores ``score_only`` and generates a reply instead."""

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        plain = request.model_copy(update={"score_only": False, "assistant_prefix": None})
        return await super().complete(plain)


def test_a_backend_that_generates_instead_is_not_trusted() -> None:
    # a backend that ignores score_only replies with text: that is no score
    output, result = _run(LikelihoodParams(model="small"), 2, IgnoresScoreOnly())
    assert all(c.signal("logprob") is None for c in output.items)
    assert any("no log-probability" in w for w in result.warnings)


def test_partial_scores_put_the_unscored_last() -> None:
    client = ScoringClient(
        fail_when=lambda r: (r.assistant_prefix or "").startswith("Candidate 2"),
        failure=lambda r: ModelCallError("context too long", retryable=False),
    )
    output, _ = _run(LikelihoodParams(model="small"), 3, client)
    assert [c.text.split(":")[0] for c in output.items] == [
        "Candidate 3",
        "Candidate 1",
        "Candidate 2",
    ]


def test_other_failures_are_not_swallowed() -> None:
    client = ScoringClient(fail_first=99)  # retryable 503s: retries exhausted is a failure
    with pytest.raises(NodeFailed, match="HTTP 503"):
        _run(LikelihoodParams(model="small"), 2, client)


def test_authentication_failures_are_not_swallowed() -> None:
    client = ScoringClient(
        fail_first=99, failure=lambda r: ModelCallError("bad key", retryable=False, status=401)
    )
    with pytest.raises(NodeFailed, match="bad key"):
        _run(LikelihoodParams(model="small"), 2, client)


def test_scored_logprob_rules() -> None:
    def response(text: str, logprob: float | None) -> CompletionResponse:
        return CompletionResponse(completions=(Completion(text=text, logprob=logprob),))

    assert scored_logprob(response("", -0.3)) == -0.3
    assert scored_logprob(response("generated", -0.3)) is None
    assert scored_logprob(response("", None)) is None
    assert scored_logprob(response("", float("nan"))) is None
    assert scored_logprob(CompletionResponse(completions=())) is None


def test_estimate_is_one_prefill_per_candidate() -> None:
    estimate = Likelihood.estimate(LikelihoodParams(model="small", top_k=2), 100, [Flow(5, 50)])
    (call,) = estimate.calls
    assert (call.model, call.calls, call.tokens_out) == ("small", 5, 0)
    assert call.tokens_in >= 5 * 150
    assert estimate.output == Flow(2, 50)
