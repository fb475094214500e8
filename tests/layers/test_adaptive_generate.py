"""adaptive_generate: the contract, plus early stopping and the samples-used record."""

from __future__ import annotations

import itertools

from archon.layers.adaptive_generate import AdaptiveGenerate, AdaptiveGenerateParams
from archon.runtime.clients.fake import ScriptedClient
from archon.testing import LayerContract
from archon.values import Candidates, CompletionRequest


class TestAdaptiveGenerateContract(LayerContract):
    layer = AdaptiveGenerate
    params = AdaptiveGenerateParams(models=("m",), samples=8, batch=2, min_samples=3)
    script = ((None, "The answer is 42."),)
    parses_output = False


def _run(client: ScriptedClient, **params: object) -> Candidates:
    contract = TestAdaptiveGenerateContract()
    contract.params = AdaptiveGenerateParams.model_validate(  # type: ignore[misc]
        {"models": ("m",), "samples": 10, "batch": 2, "min_samples": 3, **params}
    )
    result = contract.run_sync(0, client)
    assert isinstance(result.output, Candidates)
    return result.output


def test_stops_early_when_answers_agree() -> None:
    client = ScriptedClient([(None, "Answer: 42")])
    output = _run(client, extract="number")
    assert client.calls == 4  # rounds of 2 until at least min_samples=3, all agree
    assert len(output.items) == 4  # samples used are the candidates returned
    assert [c.sample_index for c in output.items] == [0, 1, 2, 3]
    assert len({r.seed for r in client.requests}) == 4  # every sample is a distinct draw
    assert all(c.score == 1.0 for c in output.items)


def test_samples_up_to_the_cap_when_answers_disagree() -> None:
    counter = itertools.count()

    def different(request: CompletionRequest) -> str:
        return f"Answer: {next(counter)}"

    client = ScriptedClient(different)
    output = _run(client, extract="number", samples=7)
    assert client.calls == 7 and len(output.items) == 7


def test_agreement_threshold_counts_the_majority_share() -> None:
    replies = itertools.cycle(["Answer: 1", "Answer: 1", "Answer: 2"])
    client = ScriptedClient(lambda r: next(replies))
    output = _run(client, extract="number", agreement=0.6)
    assert client.calls == 4  # after 4 draws: 1,1,2,1 -> 3/4 agree
    assert len(output.items) == 4


def test_a_model_listed_twice_draws_distinct_samples() -> None:
    client = ScriptedClient(lambda r: f"Answer: {r.seed}")
    output = _run(client, models=("a", "a"), samples=2, batch=2, min_samples=4)
    assert sorted(c.sample_index for c in output.items) == [0, 1, 2, 3]
    assert len({c.text for c in output.items}) == 4 and client.calls == 4
