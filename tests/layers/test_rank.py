"""rank: the contract for each mode, plus the behaviour of listwise, pairwise and score."""

from __future__ import annotations

import math
import re

from archon.layers.rank import Rank, RankParams
from archon.runtime.clients.fake import ScriptedClient
from archon.testing import LayerContract
from archon.values import Candidates, CompletionRequest


class TestRankListwise(LayerContract):
    layer = Rank
    params = RankParams(model="judge", top_k=2)
    script = ((None, "Ranking: [2] > [1] > [4] > [3]"),)


class TestRankPairwise(LayerContract):
    layer = Rank
    params = RankParams(model="judge", top_k=2, mode="pairwise")
    script = ((None, "Better: A"),)


class TestRankScore(LayerContract):
    layer = Rank
    params = RankParams(model="judge", top_k=2, mode="score")
    script = ((None, "Score: 6"),)


def _texts(result_output: object) -> list[str]:
    assert isinstance(result_output, Candidates)
    return [c.text for c in result_output.items]


def test_listwise_keeps_top_k_in_the_judges_order() -> None:
    contract = TestRankListwise()
    inputs = [c.text for c in contract.make_inputs(4)[0].items]  # type: ignore[attr-defined]
    result = contract.run_sync(
        4, ScriptedClient([(None, "I prefer... Ranking: [3] > [1] > [4] > [2]")])
    )
    assert _texts(result.output) == [inputs[2], inputs[0]]
    assert not result.warnings


def test_listwise_garbage_keeps_input_order_and_warns() -> None:
    contract = TestRankListwise()
    inputs = [c.text for c in contract.make_inputs(3)[0].items]  # type: ignore[attr-defined]
    result = contract.run_sync(3, ScriptedClient([(None, "no idea")]))
    assert _texts(result.output) == inputs[:2]
    assert result.warnings


def _prefers_highest(request: CompletionRequest) -> str:
    """A judge that prefers the candidate with the larger number, whatever its position."""
    text = request.messages[-1].content
    a = int(re.search(r"Answer A:\s*Candidate (\d+)", text).group(1))  # type: ignore[union-attr]
    b = int(re.search(r"Answer B:\s*Candidate (\d+)", text).group(1))  # type: ignore[union-attr]
    return "Better: A" if a > b else "Better: B"


def test_pairwise_judges_both_orders_and_ranks_by_wins() -> None:
    contract = TestRankPairwise()
    client = ScriptedClient(_prefers_highest)
    result = contract.run_sync(3, client)
    assert client.calls == 6  # 3 pairs, each in both orders
    shown = {
        tuple(re.findall(r"Answer [AB]:\s*Candidate (\d+)", r.messages[-1].content))
        for r in client.requests
    }
    assert ("1", "2") in shown and ("2", "1") in shown
    assert [t.split(":")[0] for t in _texts(result.output)] == ["Candidate 3", "Candidate 2"]


def test_pairwise_position_bias_cancels_out() -> None:
    """A judge that always picks position A gives every candidate the same number of wins."""
    result = TestRankPairwise().run_sync(3, ScriptedClient([(None, "Better: A")]))
    assert isinstance(result.output, Candidates)
    assert {c.score for c in result.output.items} == {0.5}


def test_score_mode_orders_by_parsed_score() -> None:
    def score(request: CompletionRequest) -> str:
        number = re.search(r"Candidate (\d+)", request.messages[-1].content)
        return {"1": "Score: 3", "2": "Score: 9", "3": "Score: 5"}[number.group(1)]  # type: ignore[union-attr]

    result = TestRankScore().run_sync(3, ScriptedClient(score))
    assert isinstance(result.output, Candidates)
    assert [c.score for c in result.output.items] == [0.9, 0.5]


def test_score_mode_uses_logprobs_when_returned() -> None:
    contract = TestRankScore()
    contract.params = RankParams(model="judge", top_k=3, mode="score", logprobs=True)  # type: ignore[misc]

    def yes_for_two(request: CompletionRequest) -> str:
        assert request.logprobs
        return "Yes" if "Candidate 2" in request.messages[-1].content else "No"

    result = contract.run_sync(3, ScriptedClient(yes_for_two, logprob=math.log(0.8)))
    assert isinstance(result.output, Candidates)
    first, *rest = result.output.items
    assert first.text.startswith("Candidate 2")
    assert math.isclose(first.score or 0.0, 0.8)
    assert all(math.isclose(c.score or 0.0, 0.2) for c in rest)


def test_one_candidate_needs_no_judge() -> None:
    client = ScriptedClient()
    result = TestRankListwise().run_sync(1, client)
    assert client.calls == 0 and len(_texts(result.output)) == 1
