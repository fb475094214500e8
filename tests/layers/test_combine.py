"""combine: the contract, scoring from signals, and weights fitted on a synthetic dev set."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import pydantic
import pytest

from archon.layers.combine import (
    Combine,
    CombineParams,
    FitError,
    Weights,
    feature_value,
    features_of,
    fit_weights,
)
from archon.runtime.clients.fake import ScriptedClient
from archon.testing import LayerContract
from archon.values import Candidate, Candidates, Payload

SIGNALS: tuple[tuple[tuple[str, float], ...], ...] = (
    (("tests_passed", 0.2), ("exec_agreement", 0.2)),
    (("tests_passed", 1.0), ("exec_agreement", 0.6)),
    (("exec_agreement", 0.2),),  # ran no test: tests_passed counts as 0
    (("tests_passed", 1.0), ("exec_agreement", 0.2), ("judge", 0.0)),
)


class TestCombineContract(LayerContract):
    layer = Combine
    params = CombineParams(features=("tests_passed", "exec_agreement"), weights=(2.0, 1.0))
    parses_output = False
    signals: Sequence[tuple[tuple[str, float], ...]] = SIGNALS

    def make_inputs(self, n: int) -> Sequence[Payload]:
        items = tuple(
            Candidate(text=f"candidate {i}", signals=self.signals[i % len(self.signals)])
            for i in range(n)
        )
        return (Candidates(items=items),)


def _combine(params: CombineParams, n: int = 4) -> tuple[tuple[Candidate, ...], tuple[str, ...]]:
    contract = TestCombineContract()
    contract.params = params  # type: ignore[misc]
    result = contract.run_sync(n, ScriptedClient())
    assert isinstance(result.output, Candidates)
    return result.output.items, result.warnings


def test_orders_by_the_weighted_score_of_the_signals() -> None:
    items, warnings = _combine(TestCombineContract.params)  # type: ignore[arg-type]
    assert [c.text for c in items] == ["candidate 1", "candidate 3", "candidate 0", "candidate 2"]
    expected = 1.0 / (1.0 + math.exp(-(2.0 * 1.0 + 1.0 * 0.6)))
    assert items[0].score == pytest.approx(expected)
    assert not [w for w in warnings if "under_test" in w]


def test_weights_change_the_winner_and_top_k_keeps_the_best() -> None:
    params = CombineParams(features=("judge", "exec_agreement"), weights=(-5.0, 1.0), top_k=2)
    items, _ = _combine(params)
    # candidate 3's judge said 0.0: a negative weight on judge cannot hurt it; agreement decides
    assert [c.text for c in items] == ["candidate 1", "candidate 0"]


def test_default_weights_are_ones_over_the_builtin_signals() -> None:
    items, _ = _combine(CombineParams())
    assert items[0].text == "candidate 1"  # 1.0 + 0.6 is the largest sum


def test_no_signal_at_all_keeps_the_input_order_with_a_warning() -> None:
    contract = TestCombineContract()
    contract.signals = ((),)
    result = contract.run_sync(3, ScriptedClient())
    assert isinstance(result.output, Candidates)
    assert [c.text for c in result.output.items] == ["candidate 0", "candidate 1", "candidate 2"]
    assert {c.score for c in result.output.items} == {0.5}
    assert any("no candidate carries" in w for w in result.warnings)


def test_params_are_validated() -> None:
    with pytest.raises(pydantic.ValidationError, match="one weight per feature"):
        CombineParams(features=("judge",), weights=(1.0, 2.0))
    with pytest.raises(pydantic.ValidationError, match="distinct"):
        CombineParams(features=("judge", "judge"))
    with pytest.raises(pydantic.ValidationError, match="finite"):
        CombineParams(features=("judge",), weights=(float("nan"),))


def test_feature_values() -> None:
    assert feature_value("judge", {}) == 0.0
    assert feature_value("logprob", {"logprob": -0.5}) == pytest.approx(math.exp(-0.5))
    assert feature_value("logprob:large", {"logprob:large": 0.3}) == 1.0  # clipped to p <= 1
    assert feature_value("vote_share", {"vote_share": float("nan")}) == 0.0
    sampled = Candidate(text="x", logprob=-1.0, signals=(("judge", 1.0),))
    assert features_of(sampled) == {"judge": 1.0, "logprob": -1.0}
    scored = sampled.with_signal("logprob", -0.2)
    assert features_of(scored)["logprob"] == -0.2  # a scoring layer's value wins


# ---------------------------------------------------------------------- fitting


def _dev_set(n: int, seed: int) -> list[tuple[dict[str, float], bool]]:
    """Correctness follows ``exec_agreement``; ``judge`` is noise."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        agreement, noise = rng.random(), rng.random()
        rows.append(({"exec_agreement": agreement, "judge": noise}, rng.random() < agreement))
    return rows


def test_fit_finds_the_informative_signal_and_ignores_the_noise() -> None:
    weights = fit_weights(_dev_set(600, seed=1))
    assert weights.features == ("exec_agreement", "judge")
    informative, noise = weights.weights
    assert informative > 2.0
    assert abs(noise) < 0.25 * informative
    # ... and it ranks held-out candidates better than chance
    held_out = _dev_set(400, seed=2)
    scores = [(weights.score(signals), correct) for signals, correct in held_out]
    assert _auc(scores) > 0.7


def _auc(scores: Sequence[tuple[float, bool]]) -> float:
    positive = [s for s, correct in scores if correct]
    negative = [s for s, correct in scores if not correct]
    wins = sum((p > q) + 0.5 * (p == q) for p in positive for q in negative)
    return wins / (len(positive) * len(negative))


def test_fitted_weights_replay_identically_through_the_layer() -> None:
    rows = _dev_set(200, seed=3)
    weights = fit_weights(rows)
    params = CombineParams.model_validate_json(CombineParams(**weights.params()).model_dump_json())
    assert params.resolved() == weights
    contract = TestCombineContract()
    contract.signals = [tuple(signals.items()) for signals, _ in rows[:6]]
    contract.params = params  # type: ignore[misc]
    result = contract.run_sync(6, ScriptedClient())
    assert isinstance(result.output, Candidates)
    replayed = {c.text: c.score for c in result.output.items}
    for k, (signals, _) in enumerate(rows[:6]):
        assert replayed[f"candidate {k}"] == weights.score(signals)


def test_fit_stays_finite_when_a_signal_separates_the_labels() -> None:
    rows = [({"tests_passed": 1.0}, True)] * 20 + [({"tests_passed": 0.0}, False)] * 20
    weights = fit_weights(rows)
    assert all(math.isfinite(w) for w in (*weights.weights, weights.bias))
    assert weights.score({"tests_passed": 1.0}) > 0.8 > 0.2 > weights.score({"tests_passed": 0.0})


def test_fit_with_one_label_only_and_given_features() -> None:
    weights = fit_weights([({"judge": 0.5}, True)] * 5, features=("judge", "vote_share"))
    assert weights.features == ("judge", "vote_share")
    assert math.isfinite(weights.bias) and weights.score({}) > 0.5


def test_fit_rejects_what_it_cannot_fit() -> None:
    with pytest.raises(FitError, match="at least one"):
        fit_weights([])
    with pytest.raises(FitError, match="no features"):
        fit_weights([({}, True)])
    with pytest.raises(FitError, match="l2"):
        fit_weights([({"judge": 1.0}, True)], l2=-1.0)


def test_weights_params_round_trip() -> None:
    weights = Weights(("judge",), (1.5,), -0.25)
    assert CombineParams(**weights.params()).resolved() == weights
