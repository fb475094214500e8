"""Paired decisions: the Wilcoxon pruner (quality), the dominance rule (pareto), item
screening, and the per-query calls constraint."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, cast

import pytest

from archon.cli.search_cmds import _Lines
from archon.ir import Pipeline
from archon.layers.registry import Registry
from archon.runtime import Meter
from archon.search import SearchBudget, SearchEvent, SearchOptions
from archon.search.objective import Progress
from archon.search.paired import (
    Incumbent,
    ItemScreen,
    dominated,
    paired_verdict,
    screen_items,
    wilcoxon_less,
)

from .helpers import compile_text, run_search, sim_runtime

GENERATE = """
models { a = "sim/a" }
pipeline gen {
  gen = generate(models = [a], samples = int(1, 4), temperature = float(0.0, 1.0), max_tokens = 32)
}
"""


class ScriptedScores:
    """An evaluator whose per-item scores are a function of (samples, item position)."""

    def __init__(self, score: Callable[[int, int], float]) -> None:
        self.score = score
        self.seen: list[tuple[int, int]] = []  # (samples, items evaluated)

    async def evaluate_chunks(
        self,
        pipeline: Pipeline,
        items: Sequence[Any],
        *,
        chunk_size: int,
        budget: Meter | None,
    ) -> AsyncGenerator[Progress, None]:
        samples = int(pipeline.nodes[0].arguments()["samples"])
        scores: list[tuple[str, float]] = []
        positions = {item.id: int(item.id.rsplit("-", 1)[-1]) for item in items}
        try:
            for start in range(0, len(items), chunk_size):
                for item in items[start : start + chunk_size]:
                    scores.append((item.id, self.score(samples, positions[item.id])))
                done = len(scores)
                yield Progress(
                    items_done=done,
                    score=sum(s for _, s in scores) / done,
                    calls=samples * done,
                    scores=tuple(scores),
                )
        finally:  # a pruned trial's evaluation is closed early
            self.seen.append((samples, len(scores)))


@pytest.fixture(scope="module")
def template(registry: Registry) -> Pipeline:
    return compile_text(GENERATE, registry)


def test_wilcoxon_p_is_small_only_for_a_consistent_loss() -> None:
    assert wilcoxon_less([-1.0] * 12) < 0.01
    assert wilcoxon_less([0.0] * 12) == 1.0
    assert wilcoxon_less([-1.0, 1.0] * 6) > 0.4


def test_dominated_needs_a_rival_that_costs_no_more() -> None:
    worse = {f"i{k}": 0.0 for k in range(12)}
    rival = Incumbent(3, {f"i{k}": 1.0 for k in range(12)}, cost=2.0)
    assert dominated(worse, 2.0, [rival]) is not None
    assert "trial 3" in str(dominated(worse, 5.0, [rival]))
    assert dominated(worse, 1.0, [rival]) is None  # cheaper: may still be on the front
    tie = dict(rival.scores)
    assert dominated(tie, 2.0, [rival]) is None


def test_the_paired_pruner_prunes_a_worse_trial_and_keeps_a_tie(
    template: Pipeline, registry: Registry
) -> None:
    # samples 1 fails 3 of every 4 items; every other count passes all of them
    evaluator = ScriptedScores(lambda samples, i: 1.0 if samples > 1 or i % 4 == 0 else 0.0)
    result = run_search(
        template,
        evaluator,
        registry,
        dev=40,
        test=0,
        options=SearchOptions(seed=3, chunk_size=4, promote_top=0),
        budget=SearchBudget(trials=14),
    )
    trials = {t.number: t for t in result.report.trials}
    assert trials[1].params["gen.samples"] == 4  # the largest sample count goes first
    later = [t for t in result.report.trials if t.number >= 2 and "duplicate_of" not in t.attrs]
    worse = [t for t in later if t.params["gen.samples"] == 1]
    ties = [t for t in later if t.params["gen.samples"] > 1]
    assert worse and ties
    assert all(t.state == "PRUNED" and "Wilcoxon" in t.attrs["pruned_by"] for t in worse)
    assert all(t.state == "COMPLETE" for t in ties)
    pruned_items = [n for s, n in evaluator.seen if s == 1][1:]
    assert pruned_items and max(pruned_items) < 40  # stopped before the end


def test_pareto_prunes_only_what_a_cheaper_rival_beats(
    template: Pipeline, registry: Registry
) -> None:
    # calls per query = samples; 4 samples is the best, 1 sample worse but cheapest,
    # 3 samples worse than 2 at a higher cost: the only kind the rule may prune
    def score(samples: int, i: int) -> float:
        if samples == 3:
            return 1.0 if i % 4 == 0 else 0.0
        return 1.0 if samples >= 2 or i % 2 == 0 else 0.0

    result = run_search(
        template,
        ScriptedScores(score),
        registry,
        dev=40,
        test=0,
        options=SearchOptions(objective="pareto", seed=5, chunk_size=4),
        budget=SearchBudget(trials=16),
    )
    pruned = [t for t in result.report.trials if t.state == "PRUNED" and not t.infeasible]
    assert pruned, "some 3-sample trial should have been pruned"
    assert all(t.params["gen.samples"] == 3 for t in pruned)
    assert all("on" in t.attrs["pruned_by"] for t in pruned)
    front_samples = {t.params["gen.samples"] for t in result.best}
    assert 3 not in front_samples


def test_screen_drops_items_every_screening_trial_scored_the_same() -> None:
    ids = [f"i{k}" for k in range(6)]
    a = {"i0": 1.0, "i1": 1.0, "i2": 0.0, "i3": 1.0, "i4": 0.0, "i5": 0.0}
    b = {"i0": 1.0, "i1": 0.0, "i2": 0.0, "i3": 1.0, "i4": 1.0, "i5": 0.0}
    screen = screen_items(ids, [(0, a), (1, b)])
    assert screen is not None
    assert screen.kept == ("i1", "i4")
    assert screen.credit == {"i0": 1.0, "i2": 0.0, "i3": 1.0, "i5": 0.0}
    assert screen.objective({"i1": 1.0, "i4": 1.0}) == pytest.approx(4 / 6)
    assert "2 of 6 dev items" in screen.describe()
    assert ItemScreen.from_json(screen.as_json()) == screen
    assert screen_items(ids, [(0, a)]) is None  # one trial cannot screen
    assert screen_items(ids, [(0, a), (1, a)]) is None  # would keep nothing


def test_a_search_with_screening_evaluates_later_trials_on_fewer_items(
    template: Pipeline, registry: Registry
) -> None:
    # items 0-29 are passed by everything; items 30-39 only by 3+ samples
    evaluator = ScriptedScores(lambda samples, i: 1.0 if i < 30 or samples >= 3 else 0.0)
    events: list[SearchEvent] = []
    result = run_search(
        template,
        evaluator,
        registry,
        dev=40,
        test=0,
        options=SearchOptions(seed=2, chunk_size=5, screen_after=2, promote_top=2),
        budget=SearchBudget(trials=8),
        on_event=events.append,
    )
    [said] = [e.message for e in events if e.kind == "screened"]
    assert "saw 10 of 40 dev items" in str(said)
    assert _Lines.line(cast(Any, None), SearchEvent(kind="screened", message="x")) == (
        "item screen: x"
    )
    # credits never choose the winner: the best are re-evaluated on every dev item
    assert result.best and result.best[0].full_dev_items == 40
    screened = [t for t in result.report.trials if "screened_items" in t.attrs]
    assert screened and all(t.attrs["screened_items"] == 10 for t in screened)
    for trial in screened:
        if trial.state == "COMPLETE" and "duplicate_of" not in trial.attrs:
            expected = 1.0 if trial.params["gen.samples"] >= 3 else 0.75
            assert trial.values is not None and trial.values[0] == pytest.approx(expected)
    assert all(n in (40, 10) or n < 10 for _, n in evaluator.seen[:-2])


def test_screening_needs_a_paired_or_no_pruner() -> None:
    with pytest.raises(Exception, match="paired pruner"):
        SearchOptions(pruner="sha", screen_after=3).validate()


@pytest.mark.parametrize("objective", ["quality", "pareto"])
def test_mean_calls_cap_is_a_constraint_not_a_penalty(
    template: Pipeline, registry: Registry, objective: str
) -> None:
    evaluator, _client = sim_runtime(registry, accuracy=0.9)
    result = run_search(
        template,
        evaluator,
        registry,
        dev=6,
        test=0,
        options=SearchOptions(
            seed=1,
            max_mean_calls=2.0,
            pruner="none",
            objective=objective,  # type: ignore[arg-type]
        ),
        budget=SearchBudget(trials=10),
    )
    complete = [t for t in result.report.trials if t.state == "COMPLETE"]
    over = [t for t in complete if t.params["gen.samples"] > 2]
    assert over, "the widest trial (4 samples) is evaluated and over the cap"
    assert all(t.attrs["constraint"] > 0 for t in over)
    assert result.best and all(t.params["gen.samples"] <= 2 for t in result.best)
    for trial in over:  # its score is its score: nothing subtracted
        assert trial.values is not None and trial.values[0] == trial.attrs["score"]


def test_at_equal_scores_the_cheaper_configuration_is_promoted_and_wins(
    template: Pipeline, registry: Registry
) -> None:
    evaluator = ScriptedScores(lambda samples, i: 1.0)  # every configuration ties
    result = run_search(
        template,
        evaluator,
        registry,
        dev=12,
        test=0,
        options=SearchOptions(seed=0, trial_items=6, promote_top=1, pruner="none", winner="best"),
        budget=SearchBudget(trials=8),
    )
    complete = [t for t in result.report.trials if t.state == "COMPLETE"]
    cheapest = min(t.params["gen.samples"] for t in complete)
    assert result.best[0].params["gen.samples"] == cheapest
    assert result.best[0].full_dev_items == 12


def test_paired_verdict_needs_a_significant_consistent_win() -> None:
    base = {f"i{k}": 0.0 for k in range(12)}
    assert paired_verdict({k: 1.0 for k in base}, base).better
    one_win = dict(base, i0=1.0)
    verdict = paired_verdict(one_win, base)
    assert not verdict.better and (verdict.wins, verdict.losses, verdict.pairs) == (1, 0, 12)
    assert not paired_verdict(base, {k: 1.0 for k in base}).better  # a loss is no win
    few = {f"i{k}": 1.0 for k in range(3)}
    assert paired_verdict(few, base).p == 1.0  # 3 paired items decide nothing


def _search_with_winner_rule(
    template: Pipeline, registry: Registry, score: Callable[[int, int], float], winner: str
) -> Any:
    return run_search(
        template,
        ScriptedScores(score),
        registry,
        dev=12,
        test=0,
        options=SearchOptions(
            seed=0,
            trial_items=6,
            promote_top=2,
            pruner="none",
            winner=winner,  # type: ignore[arg-type]
        ),
        budget=SearchBudget(trials=8),
    )


def _one_item_better(samples: int, i: int) -> float:
    """More samples fix one item of twelve: better, not significantly."""
    return 1.0 if samples >= 3 or i != 0 else 0.0


def test_the_baseline_stays_the_winner_unless_significantly_beaten(
    template: Pipeline, registry: Registry
) -> None:
    result = _search_with_winner_rule(template, registry, _one_item_better, "paired")
    baseline = result.report.baseline
    assert baseline is not None and baseline.params["gen.samples"] < 3
    assert result.best[0].number == baseline.number
    note = result.report.winner_note
    assert note is not None and "stays the winner" in note and "1 better, 0 worse" in note
    # the best trial by score is the challenger the note names
    assert any(
        t.params["gen.samples"] >= 3 and f"best trial {t.number} " in note
        for t in result.report.trials
    )

    best_rule = _search_with_winner_rule(template, registry, _one_item_better, "best")
    assert best_rule.best[0].params["gen.samples"] >= 3
    assert best_rule.report.winner_note is None


def test_a_significantly_better_trial_replaces_the_baseline(
    template: Pipeline, registry: Registry
) -> None:
    def half_fixed(samples: int, i: int) -> float:
        return 1.0 if samples >= 3 or i % 2 else 0.0

    result = _search_with_winner_rule(template, registry, half_fixed, "paired")
    assert result.best[0].params["gen.samples"] >= 3
    note = result.report.winner_note
    assert note is not None and "replaces the baseline" in note and "6 better, 0 worse" in note
