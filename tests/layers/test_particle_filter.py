"""particle_filter: the contract, resampling statistics, weights, finished particles."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from typing import Any

import pytest

from archon.ir import Budget
from archon.layers.particle_filter import (
    ParticleFilter,
    ParticleFilterParams,
    importance_weights,
    multinomial_resample,
    systematic_resample,
)
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

WEIGHTS = [0.1, 0.2, 0.3, 0.4]


class TestParticleFilterContract(LayerContract):
    layer = ParticleFilter
    params = ParticleFilterParams(model="m", particles=4, max_steps=4)

    def make_client(self, **options: Any) -> ScriptedClient:
        return step_client(**options)


def _run(
    params: ParticleFilterParams, client: ScriptedClient, *, budget: Budget | None = None
) -> RunResult:
    return run_layer(ParticleFilter, params, client, budget=budget)


def test_systematic_resampling_copies_each_particle_floor_or_ceil_of_n_w() -> None:
    rng = random.Random(0)
    n, draws = 10, 4000
    totals = Counter[int]()
    for _ in range(draws):
        counts = Counter(systematic_resample(WEIGHTS, rng, n))
        for i, w in enumerate(WEIGHTS):
            assert math.floor(n * w) <= counts[i] <= math.ceil(n * w)
        totals.update(counts)
    for i, w in enumerate(WEIGHTS):
        assert totals[i] / draws == pytest.approx(n * w, abs=0.05)


def test_systematic_resampling_of_uneven_weights_is_unbiased() -> None:
    rng = random.Random(1)
    weights, n, draws = [0.05, 0.15, 0.8], 4, 20000
    totals = Counter[int]()
    for _ in range(draws):
        totals.update(systematic_resample(weights, rng, n))
    for i, w in enumerate(weights):  # n w = 0.2, 0.6, 3.2 copies on average
        assert totals[i] / draws == pytest.approx(n * w, abs=0.03)


def test_multinomial_resampling_draws_in_proportion_to_the_weights() -> None:
    rng = random.Random(2)
    n, draws = 10, 4000
    totals = Counter[int]()
    spread = set()
    for _ in range(draws):
        counts = Counter(multinomial_resample(WEIGHTS, rng, n))
        spread.add(counts[3])
        totals.update(counts)
    for i, w in enumerate(WEIGHTS):  # std of the mean: sqrt(n w (1 - w) / draws) < 0.03
        assert totals[i] / draws == pytest.approx(n * w, abs=0.12)
    assert len(spread) > 3  # independent draws vary far more than floor/ceil


def test_resampling_is_deterministic_under_a_seed() -> None:
    for resample in (systematic_resample, multinomial_resample):
        first = resample(WEIGHTS, random.Random(5), 8)
        assert first == resample(WEIGHTS, random.Random(5), 8)
        assert all(0 <= i < len(WEIGHTS) for i in first)


def test_importance_weights() -> None:
    scores = [0.2, 0.5, 0.8]
    odds = [s / (1 - s) for s in scores]  # softmax(logit(s)) is proportional to the odds
    assert importance_weights(scores) == pytest.approx([o / sum(odds) for o in odds])
    assert importance_weights(scores, "linear") == pytest.approx([0.2 / 1.5, 0.5 / 1.5, 0.8 / 1.5])
    assert importance_weights([0.0, 0.0], "linear") == [0.5, 0.5]
    assert sum(importance_weights([0.0, 1.0, 1.0])) == pytest.approx(1.0)
    assert importance_weights([]) == []


def _rounds(client: ScriptedClient) -> dict[int, list[CompletionRequest]]:
    rounds: dict[int, list[CompletionRequest]] = defaultdict(list)
    for request in client.requests:
        if not is_judge(request):
            rounds[steps_before(request)].append(request)
    return rounds


@pytest.mark.parametrize("weighting", ["softmax", "linear"])
def test_the_filter_resamples_particles_in_proportion_to_their_weights(weighting: str) -> None:
    n = 8
    params = ParticleFilterParams(
        model="m",
        particles=n,
        max_steps=6,
        scorer="logprob",
        weighting=weighting,  # type: ignore[arg-type]
    )
    client = step_client(final_at=4)
    _run(params, client)
    rounds = _rounds(client)
    for r in (0, 1):
        children = [
            (q.assistant_prefix or "") + client.reply_for(q).split(DELIMITER)[0] for q in rounds[r]
        ]
        weights = importance_weights(
            [step_score(c.split(DELIMITER)[-1]) for c in children], weighting
        )
        copies = Counter(q.assistant_prefix for q in rounds[r + 1])
        assert sum(copies.values()) == n
        for child, w in zip(children, weights, strict=True):
            assert math.floor(n * w) <= copies[child + DELIMITER] <= math.ceil(n * w)


@pytest.mark.parametrize("weighting", ["softmax", "linear"])
def test_finished_particles_stay_in_the_pool_and_are_not_extended(weighting: str) -> None:
    def reply(request: CompletionRequest) -> str:
        seed = request.seed or 0
        if request.assistant_prefix is None and seed % 2 == 0:
            return "The answer is 42."  # finishes at once, and scores well
        return f"Step, idea {'abcdefgh'[seed % 8]}."

    def logprob(request: CompletionRequest, text: str) -> float:
        return math.log(0.9 if "answer" in text else 0.3)

    client = ScriptedClient(reply, logprob=logprob)
    params = ParticleFilterParams(
        model="m",
        particles=6,
        max_steps=3,
        scorer="logprob",
        weighting=weighting,  # type: ignore[arg-type]
    )
    result = _run(params, client)
    assert not any("answer" in (r.assistant_prefix or "") for r in client.requests)
    assert isinstance(result.output, Candidates)
    items = result.output.items
    assert len(items) == 6
    assert items[0].text == "The answer is 42." and items[0].score == pytest.approx(0.9)
    # 3 of 6 finish at step 1 with 0.9 against 0.3: resampling copies them to 6 x 3 x 0.9 /
    # (3 x 0.9 + 3 x 0.3) = 4.5 slots (linear) or 6 x 9 / (3 x 9 + 3 x 0.43) = 5.7 (odds)
    finished = sum(c.text == "The answer is 42." for c in items)
    assert finished >= 4


def test_budget_stops_the_filter_cleanly_with_the_best_partial_particles() -> None:
    params = ParticleFilterParams(model="m", particles=4, max_steps=6, scorer="logprob")
    client = step_client(final_at=5)
    result = _run(params, client, budget=Budget(calls=10))
    assert result.usage.calls == 8
    assert isinstance(result.output, Candidates)
    scores = [c.score for c in result.output.items]
    assert len(scores) == 4 and scores == sorted(scores, reverse=True)
    assert any("budget: stopped before step 3" in w for w in result.warnings)


def test_estimate_bounds_expansions_and_judge_calls() -> None:
    params = ParticleFilterParams(model="m", particles=16, max_steps=10)
    estimate = ParticleFilter.estimate(params, 100, ())
    assert [call.calls for call in estimate.calls] == [160, 161]
    assert estimate.output.items == 16
