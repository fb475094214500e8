"""consensus: the contract, vote shares on every candidate, and ordering."""

from __future__ import annotations

from collections.abc import Sequence

from archon.layers.consensus import Consensus, ConsensusParams
from archon.runtime.clients.fake import ScriptedClient
from archon.testing import LayerContract
from archon.values import Candidate, Candidates, Payload


class TestConsensusContract(LayerContract):
    layer = Consensus
    params = ConsensusParams(extract="number")
    parses_output = False
    texts: Sequence[str] = ()

    def make_inputs(self, n: int) -> Sequence[Payload]:
        texts = self.texts or [f"so the answer is {40 + i % 2}" for i in range(n)]
        return (
            Candidates(items=tuple(Candidate(text=t, sample_index=i) for i, t in enumerate(texts))),
        )


def _consensus(
    texts: Sequence[str], **params: object
) -> tuple[tuple[Candidate, ...], tuple[str, ...]]:
    contract = TestConsensusContract()
    contract.texts = texts
    contract.params = ConsensusParams.model_validate(params)  # type: ignore[misc]
    result = contract.run_sync(len(texts), ScriptedClient())
    assert isinstance(result.output, Candidates)
    return result.output.items, result.warnings


def test_every_candidate_gets_its_groups_share_largest_group_first() -> None:
    texts = ["it is 5", "Answer: 7", "no idea", "7.0", "five? 5", "7"]
    items, warnings = _consensus(texts, extract="number")
    assert [c.text for c in items] == ["Answer: 7", "7.0", "7", "it is 5", "five? 5", "no idea"]
    assert [c.signal("vote_share") for c in items] == [0.5, 0.5, 0.5, 1 / 3, 1 / 3, 0.0]
    assert [c.score for c in items] == [c.signal("vote_share") for c in items]
    assert any("1 of 6" in w for w in warnings)


def test_ties_go_to_the_group_seen_first_and_top_k_keeps_the_best() -> None:
    items, _ = _consensus(["3", "5", "5", "3", "8"], extract="number", top_k=3)
    assert [c.text for c in items] == ["3", "3", "5"]


def test_math_equivalence() -> None:
    items, _ = _consensus([r"\boxed{2}", r"\boxed{\frac{1}{2}}", "0.5"])
    assert [c.signal("vote_share") for c in items][:2] == [2 / 3, 2 / 3]
