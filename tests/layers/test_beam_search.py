"""beam_search: the contract, top-k at every step, aggregation, budgets, self-evaluation."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import pytest

from archon.ir import Budget
from archon.layers.beam_search import BeamSearch, BeamSearchParams
from archon.runtime import RunResult
from archon.runtime.clients.fake import ScriptedClient
from archon.testing import LayerContract
from archon.values import Candidates, CompletionRequest

from .step_script import (
    DELIMITER,
    is_judge,
    run_layer,
    step_client,
    step_score,
    steps_before,
)


class TestBeamSearchContract(LayerContract):
    layer = BeamSearch
    params = BeamSearchParams(model="m", beam_width=2, expansions=2, max_steps=4)

    def make_client(self, **options: Any) -> ScriptedClient:
        return step_client(**options)


def _run(
    params: BeamSearchParams, client: ScriptedClient, budget: Budget | None = None
) -> RunResult:
    return run_layer(BeamSearch, params, client, budget=budget)


def _rounds(client: ScriptedClient) -> dict[int, list[CompletionRequest]]:
    """Expansion requests by the number of steps they continue."""
    rounds: dict[int, list[CompletionRequest]] = defaultdict(list)
    for request in client.requests:
        if not is_judge(request):
            rounds[steps_before(request)].append(request)
    return rounds


def _child(client: ScriptedClient, request: CompletionRequest) -> str:
    step = client.reply_for(request).split(DELIMITER)[0].strip()
    return (request.assistant_prefix or "") + step


@pytest.mark.parametrize("scorer", ["logprob", "self_eval"])
def test_keeps_the_top_k_at_every_step(scorer: str) -> None:
    params = BeamSearchParams(
        model="m",
        beam_width=3,
        expansions=3,
        max_steps=6,
        scorer=scorer,  # type: ignore[arg-type]
    )
    client = step_client(final_at=5)
    result = _run(params, client)
    rounds = _rounds(client)
    assert sorted(rounds) == [0, 1, 2, 3, 4]
    assert len(rounds[0]) == 9  # beam_width x expansions first steps from the root
    for r in range(4):
        children = [_child(client, request) for request in rounds[r]]
        best = sorted(set(children), key=lambda c: -step_score(c.split(DELIMITER)[-1]))[:3]
        kept = Counter(request.assistant_prefix for request in rounds[r + 1])
        assert kept == {c + DELIMITER: 3 for c in best}, f"step {r + 1}"
    assert isinstance(result.output, Candidates)
    assert len(result.output.items) == 3
    assert all(c.text.endswith("The answer is 42.") for c in result.output.items)
    assert all(c.signal("process_score") == c.score for c in result.output.items)


def test_expansions_are_sent_concurrently_within_a_step() -> None:
    client = step_client(final_at=3, latency_s=0.01)
    _run(BeamSearchParams(model="m", beam_width=2, expansions=4, scorer="logprob"), client)
    assert client.max_in_flight == 8


def test_min_aggregation_orders_answers_by_their_weakest_step() -> None:
    params = BeamSearchParams(
        model="m", beam_width=4, expansions=2, max_steps=5, scorer="logprob", aggregate="min"
    )
    result = _run(params, step_client(final_at=3))
    assert isinstance(result.output, Candidates)
    items = result.output.items
    weakest = [min(step_score(s) for s in c.text.split(DELIMITER)) for c in items]
    assert len(items) == 4
    assert weakest == sorted(weakest, reverse=True)
    assert [c.score for c in items] == pytest.approx(weakest)


def test_budget_stops_before_a_step_that_does_not_fit() -> None:
    params = BeamSearchParams(model="m", beam_width=3, expansions=3, max_steps=6, scorer="logprob")
    client = step_client(final_at=5)
    result = _run(params, client, budget=Budget(calls=20))
    assert result.usage.calls == client.calls == 18  # two steps of 9; the third needs 9 > 2
    assert isinstance(result.output, Candidates)
    assert len(result.output.items) == 3
    assert all(c.text.count(DELIMITER) == 1 for c in result.output.items)  # two steps each
    assert any("budget: stopped before step 3" in w for w in result.warnings)
    assert any("no answer finished" in w for w in result.warnings)


def test_self_eval_scores_a_yes_prefix_with_the_judge_model() -> None:
    params = BeamSearchParams(model="m", judge="j", beam_width=2, expansions=2, max_steps=4)
    client = step_client(final_at=3)
    result = _run(params, client)
    judged = [r for r in client.requests if is_judge(r)]
    assert judged and all(
        r.score_only and r.assistant_prefix == "Yes" and r.model == "j" for r in judged
    )
    assert not result.warnings


def test_self_eval_falls_back_to_a_yes_no_reply_without_score_only() -> None:
    params = BeamSearchParams(model="m", beam_width=2, expansions=2, max_steps=4)
    client = step_client(final_at=3, score_only=False)
    result = _run(params, client)
    judged = [r for r in client.requests if is_judge(r)]
    assert sum(r.score_only for r in judged) == 1  # one probe, then generated verdicts
    assert any("cannot score a prefix" in w for w in result.warnings)
    estimate = BeamSearch.estimate(params, 64, ())
    assert client.calls <= sum(call.calls for call in estimate.calls)
    assert isinstance(result.output, Candidates)
    assert result.output.items
    assert all(c.score in (pytest.approx(0.9), pytest.approx(0.1)) for c in result.output.items)


def test_final_answer_check_prunes_answers_without_one() -> None:
    def reply(request: CompletionRequest) -> str:
        seed = request.seed or 0
        if request.assistant_prefix is None:
            return f"First, idea {'abcdefgh'[seed % 8]}."
        return "The answer is 42." if seed % 2 == 0 else "The answer is unclear."

    params = BeamSearchParams(
        model="m", beam_width=2, expansions=4, scorer="logprob", check="answer", extract="number"
    )
    client = ScriptedClient(reply, logprob=-0.1)
    result = _run(params, client)
    assert any("unclear" in client.reply_for(r) for r in client.requests)
    assert isinstance(result.output, Candidates)
    assert result.output.items
    assert all(c.text.endswith("42.") for c in result.output.items)


def test_estimate_counts_expansions_and_judge_calls() -> None:
    params = BeamSearchParams(model="m", judge="j", beam_width=3, expansions=2, max_steps=5)
    estimate = BeamSearch.estimate(params, 100, ())
    calls = {call.model: call.calls for call in estimate.calls}
    assert calls == {"m": 3 * 2 * 5, "j": 3 * 2 * 5 + 1}
    assert estimate.output.items == 3
    logprob = BeamSearch.estimate(params.model_copy(update={"scorer": "logprob"}), 100, ())
    assert [call.calls for call in logprob.calls] == [30]


def test_params_are_validated() -> None:
    with pytest.raises(ValueError, match="prm_url"):
        BeamSearchParams(model="m", scorer="prm")
    with pytest.raises(ValueError, match="final_pattern"):
        BeamSearchParams(model="m", final_pattern="(")
