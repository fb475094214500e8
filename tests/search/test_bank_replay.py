"""A search replayed from a candidate bank makes no model call."""

from __future__ import annotations

from pathlib import Path

from archon.ir import Pipeline
from archon.layers.registry import Registry
from archon.runtime import CallCache
from archon.runtime.bank import Bank, export_bank
from archon.search import SearchBudget, SearchOptions

from .helpers import run_search, sim_runtime


def test_a_search_replayed_from_a_bank_makes_no_model_call(
    generate_template: Pipeline, registry: Registry, tmp_path: Path
) -> None:
    paid = CallCache(tmp_path / "paid.sqlite", origin={"pipeline": "gen", "dataset": "sim"})
    evaluator, client = sim_runtime(registry, cache=paid)
    first = run_search(
        generate_template,
        evaluator,
        registry,
        options=SearchOptions(seed=4),
        budget=SearchBudget(trials=6),
    )
    assert client.calls > 0
    summary = export_bank(paid, tmp_path / "search.bank")
    assert summary.entries == client.calls
    fresh = CallCache(tmp_path / "fresh.sqlite", banks=[Bank.load(tmp_path / "search.bank")])
    replay_eval, replay_client = sim_runtime(registry, cache=fresh)
    again = run_search(
        generate_template,
        replay_eval,
        registry,
        options=SearchOptions(seed=4),
        budget=SearchBudget(trials=6),
    )
    assert replay_client.calls == 0 and again.spent.calls == 0
    assert fresh.bank_hits == client.calls + first.cache_hits
    assert [t.values for t in again.report.trials] == [t.values for t in first.report.trials]
