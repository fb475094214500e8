"""vote: the contract, plus majority, math equivalence, weighting and tie-break."""

from __future__ import annotations

from collections.abc import Sequence

from archon.layers.vote import Vote, VoteParams
from archon.runtime.clients.fake import ScriptedClient
from archon.testing import LayerContract
from archon.values import Candidate, Candidates, Payload


class TestVoteContract(LayerContract):
    layer = Vote
    params = VoteParams(extract="number")
    texts: Sequence[str] = ()

    def make_inputs(self, n: int) -> Sequence[Payload]:
        texts = self.texts or [f"so the answer is {40 + i % 2}" for i in range(n)]
        return (
            Candidates(
                items=tuple(
                    Candidate(text=t, sample_index=i)
                    for i, t in enumerate(texts[:n] if not self.texts else texts)
                )
            ),
        )


def _vote(texts: Sequence[str], **params: object) -> Candidates:
    contract = TestVoteContract()
    contract.texts = texts
    contract.params = VoteParams.model_validate(params)  # type: ignore[misc]
    result = contract.run_sync(len(texts), ScriptedClient())
    assert isinstance(result.output, Candidates)
    return result.output


def test_majority_answer_wins_and_reports_its_share() -> None:
    (winner,) = _vote(["Answer: 7", "I get 8", "so 7", "maybe 7.0"], extract="number").items
    assert winner.text == "Answer: 7" and winner.score == 0.75


def test_tie_goes_to_the_earliest_candidate() -> None:
    (winner,) = _vote(["it is 3", "it is 5", "5", "3"], extract="number").items
    assert winner.text == "it is 3"


def test_math_equivalence_groups_boxed_fraction_with_decimal() -> None:
    (winner,) = _vote([r"\boxed{2}", r"\boxed{\frac{1}{2}}", "0.5", r"\boxed{3}"]).items
    assert winner.text == r"\boxed{\frac{1}{2}}" and winner.score == 0.5


def test_choice_extraction() -> None:
    (winner,) = _vote(["Answer: (B)", "The answer is C", "(B)"], extract="choice").items
    assert winner.text == "Answer: (B)"


def test_logprob_weighting_can_overturn_the_count() -> None:
    contract = TestVoteContract()
    items = (
        Candidate(text="1", logprob=-3.0),
        Candidate(text="1", logprob=-3.0),
        Candidate(text="2", logprob=-0.01),
    )
    contract.make_inputs = lambda n: (Candidates(items=items),)  # type: ignore[method-assign]
    contract.params = VoteParams(extract="number", weighted=True)  # type: ignore[misc]
    result = contract.run_sync(3, ScriptedClient())
    assert isinstance(result.output, Candidates)
    assert result.output.items[0].text == "2"


def test_nothing_extractable_keeps_the_first_with_a_warning() -> None:
    contract = TestVoteContract()
    contract.texts = ["no digits", "none here"]
    result = contract.run_sync(2, ScriptedClient())
    assert isinstance(result.output, Candidates)
    assert result.output.items[0].text == "no digits"
    assert result.warnings
