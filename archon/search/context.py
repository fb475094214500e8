"""What the parts of one search run share: the frozen :class:`SearchContext` (settings, the
evaluator, the budget meters) and the small mutable :class:`SearchState` (the stop reason and
counters), plus the progress events for a live display.

The three phases of a run (:mod:`~archon.search.trials` evaluates one trial, the study loop in
:mod:`~archon.search.driver` keeps trials in flight, :mod:`~archon.search.heldout` promotes and
tests the best) each read the context and write only the state's counters.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from archon.ir import Budget, Pipeline
from archon.layers.registry import Registry
from archon.runtime import Meter
from archon.search.config import SearchBudget, SearchOptions, chunk_size_for
from archon.search.objective import Evaluator, Progress
from archon.search.paired import ItemScreen
from archon.search.record import StopReason
from archon.search.report import best_trials
from archon.search.storage import Worker
from archon.values import Usage


@dataclass(frozen=True)
class SearchEvent:
    """Progress notifications for a live display (``on_event`` callback).

    Attributes:
        kind: ``started``, ``trial_started``, ``trial_finished``, ``promoting``, ``testing``,
            ``finished``.
        trial: the trial number concerned (if any).
        state: the finished trial's state (``COMPLETE``, ``PRUNED``, ``FAIL``, ``INFEASIBLE``).
        value: its objective values.
        trials_done: finished trials in the study.
        trials_target: the trials budget (None: no trial limit).
        best: the best quality so far.
        spent: what this search spent so far.
        message: a line for humans.
    """

    kind: str
    trial: int | None = None
    state: str | None = None
    value: tuple[float, ...] | None = None
    trials_done: int = 0
    trials_target: int | None = None
    best: float | None = None
    spent: Usage = field(default_factory=Usage)
    message: str = ""


EventSink = Callable[[SearchEvent], None]


def meters(budget: SearchBudget, options: SearchOptions) -> tuple[Meter, Meter]:
    """The run-level meter of the whole search budget, and the dev meter inside it (the
    whole budget less the test reserve)."""
    total = Meter(Budget(calls=budget.calls, usd=budget.usd, seconds=budget.seconds), scope="run")
    return total, Meter(_scaled(budget, options.test_reserve), scope="run", parent=total)


def _scaled(budget: SearchBudget, keep: float) -> Budget:
    def part(value: float | None) -> float | None:
        return None if value is None else value * (1.0 - keep)

    calls = part(budget.calls)
    return Budget(
        calls=None if calls is None else math.floor(calls),
        usd=part(budget.usd),
        seconds=part(budget.seconds),
    )


@dataclass(frozen=True)
class SearchContext:
    """The settings and shared resources of one search run (never changed during it).

    Attributes:
        template, registry, evaluator, options, budget: as given to the search.
        dev, test: the dev and held-out test items; trials see ``dev[:trial_items]``.
        storage_url, study_name: where the study lives.
        worker: this process, as recorded on its trials.
        total: the run-level meter over the whole search budget.
        meter: the dev meter (``total`` minus the test reserve), a child of ``total``.
        on_event: the live-display callback (or None).
    """

    template: Pipeline
    registry: Registry
    evaluator: Evaluator[Any]
    options: SearchOptions
    budget: SearchBudget
    dev: Sequence[object]
    test: Sequence[object]
    storage_url: str | None
    study_name: str
    worker: Worker
    total: Meter
    meter: Meter
    on_event: EventSink | None = None

    @property
    def pareto(self) -> bool:
        return self.options.objective == "pareto"

    @property
    def trial_items(self) -> Sequence[object]:
        """The dev items every trial is evaluated on (a prefix of the dev split)."""
        wanted = self.options.trial_items
        return self.dev if wanted is None else self.dev[: max(1, wanted)]

    @property
    def chunk(self) -> int:
        """Dev items per pruning step."""
        return chunk_size_for(self.options, len(self.trial_items))

    def cost(self, progress: Progress) -> float:
        """Cost per query of an evaluation, in the study's cost unit (cache hits included)."""
        if not progress.items_done:
            return 0.0
        if self.options.cost == "usd":
            return progress.usd_equivalent / progress.items_done
        return progress.calls_equivalent / progress.items_done


@dataclass
class SearchState:
    """The mutable part of a run: why it stops, and counters for the result.

    ``stop`` keeps the first reason given; counters only grow.
    """

    stopped: StopReason | None = None
    cache_hits: int = 0
    usd_saved: float = 0.0
    new_trials: int = 0
    free_streak: int = 0
    recovered: list[int] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    screen: ItemScreen | None = None
    """The dev items later trials are evaluated on (``SearchOptions.screen_after``)."""

    def stop(self, reason: StopReason) -> None:
        """Stop the run for ``reason`` (the first reason wins)."""
        self.stopped = self.stopped or reason

    def spent(self, progress: Progress) -> None:
        """Count what the cache saved during an evaluation."""
        self.cache_hits += progress.cache_hits
        self.usd_saved += max(0.0, progress.usd_equivalent - progress.usd)


def emit(context: SearchContext, kind: str, study: optuna.Study, **fields: Any) -> None:
    """Send a :class:`SearchEvent` to the context's display, if any."""
    if context.on_event is None:
        return
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    best = best_trials(study)
    context.on_event(
        SearchEvent(
            kind=kind,
            trials_done=len(study.get_trials(deepcopy=False, states=finished)),
            trials_target=context.budget.trials,
            best=best[0].values[0] if best else None,
            spent=context.total.spent,
            **fields,
        )
    )
