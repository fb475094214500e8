"""verify: the contract, plus filtering, scores and the keep-at-least-one rule."""

from __future__ import annotations

import math

from archon.layers.verify import Verify, VerifyParams
from archon.runtime.clients.fake import ScriptedClient
from archon.testing import LayerContract
from archon.values import Candidates, CompletionRequest


class TestVerifyContract(LayerContract):
    layer = Verify
    params = VerifyParams(model="judge")
    script = ((r"Candidate [13]", "Looks right.\nVerdict: Yes"), (None, "Verdict: No"))


def _items(result: object) -> Candidates:
    assert isinstance(result, Candidates)
    return result


def test_keeps_accepted_candidates_with_scores_and_reports_rejections() -> None:
    result = TestVerifyContract().run_sync(4, TestVerifyContract().make_client())
    items = _items(result.output).items
    assert [c.text.split(":")[0] for c in items] == ["Candidate 1", "Candidate 3"]
    assert [c.score for c in items] == [1.0, 1.0]
    assert any("rejected 2 of 4" in w for w in result.warnings)


def test_keeps_the_best_one_when_all_are_rejected() -> None:
    result = TestVerifyContract().run_sync(3, ScriptedClient([(None, "Verdict: No")]))
    assert len(_items(result.output).items) == 1
    assert any("every candidate" in w for w in result.warnings)


def test_abstain_may_keep_none() -> None:
    contract = TestVerifyContract()
    contract.params = VerifyParams(model="judge", abstain=True)  # type: ignore[misc]
    result = contract.run_sync(3, ScriptedClient([(None, "Verdict: No")]))
    assert _items(result.output).items == ()


def test_threshold_applies_to_logprob_confidence() -> None:
    contract = TestVerifyContract()
    contract.params = VerifyParams(model="judge", threshold=0.7, logprobs=True)  # type: ignore[misc]

    def judge(request: CompletionRequest) -> str:
        assert request.logprobs
        return "Verdict: Yes"

    result = contract.run_sync(2, ScriptedClient(judge, logprob=math.log(0.6)))
    items = _items(result.output).items
    assert len(items) == 1 and math.isclose(items[0].score or 0.0, 0.6)  # below 0.7: kept one


def test_unparsable_verdict_keeps_the_candidate_with_a_warning() -> None:
    result = TestVerifyContract().run_sync(2, ScriptedClient([(None, "hmm")]))
    assert len(_items(result.output).items) == 2
    assert any("unparsable" in w for w in result.warnings)


def test_verdicts_are_recorded_as_judge_signals() -> None:
    contract = TestVerifyContract()
    contract.params = VerifyParams(model="judge", threshold=0.0)  # type: ignore[misc]
    items = _items(contract.run_sync(2, contract.make_client()).output).items
    assert [c.signal("judge") for c in items] == [1.0, 0.0]
    assert [c.signal("judge:judge") for c in items] == [1.0, 0.0]
