"""The study loop: K trials in flight on one event loop (ask/tell), budgets, resume.

:func:`search_async` runs one worker of a study in three parts:

1. :func:`open_study`: open the storage, create or load the study, check the template
   fingerprint, enqueue the template's defaults as trial 0 of a new study, fail and re-enqueue
   trials of dead workers;
2. :class:`StudyLoop`: keep ``parallel_trials`` trials in flight (``study.ask()``, evaluate
   with :class:`~archon.search.trials.TrialRunner`, ``study.tell``), stopping at the first
   limit reached (trials, calls, USD, seconds, exhausted grid); a trial cut short by the
   search budget or by an interrupt is failed and re-enqueued, never judged;
3. :func:`~archon.search.heldout.final_phase`: promote the best to the whole dev split,
   re-evaluate the winner(s) and the baseline on the held-out test split, and the reference
   baselines when asked.

All trials share the evaluator (one ``Limits``, one ``CallCache``) and one run-level
:class:`~archon.runtime.Meter` that reserves before every call, so the budget is never
exceeded. Storage calls are short and synchronous, made from the loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

import optuna
from optuna.samplers import BruteForceSampler
from optuna.study import StudyDirection
from optuna.trial import TrialState

from archon.compiler.structure import HoleRef, default_assignment, holes, resolve
from archon.compiler.structure import defaults_chooser as _defaults_chooser
from archon.errors import ArchonError
from archon.ir import Choice, IntRange, Pipeline, Value
from archon.layers.registry import Registry
from archon.runtime.concurrency import Job, in_flight
from archon.search.config import (
    SearchBudget,
    SearchOptions,
    make_pruner,
    make_sampler,
)
from archon.search.context import (
    EventSink,
    SearchContext,
    SearchEvent,
    SearchState,
    emit,
    meters,
)
from archon.search.heldout import final_phase
from archon.search.objective import Evaluator
from archon.search.paired import ItemScreen, screen_items
from archon.search.record import COPIED, StopReason, StudyKey, TrialKey, WinnerRecord
from archon.search.report import SearchResult, item_scores, summarize
from archon.search.space import encode_params
from archon.search.storage import (
    Worker,
    check_directions,
    check_template,
    open_storage,
    recover_stale,
    requeue,
)
from archon.search.trials import Interrupted, Outcome, TrialRunner, item_id

logger = logging.getLogger(__name__)

_FREE_STREAK_LIMIT = 200  # consecutive infeasible/duplicate trials before giving up

__all__ = ["EventSink", "SearchEvent", "StudyLoop", "active_params", "open_study", "search_async"]


def active_params(
    template: Pipeline, params: dict[str, Value], registry: Registry
) -> dict[str, Value]:
    """The subset of ``params`` (defaults filled in) that the configuration actually uses."""
    used: dict[str, Value] = {}
    fallback = _defaults_chooser(params, [])

    def choose(ref: HoleRef) -> Value:
        used[ref.name] = fallback(ref)
        return used[ref.name]

    resolve(template, choose, registry)
    return used


def _directions(context: SearchContext) -> list[StudyDirection]:
    if context.pareto:
        return [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]
    return [StudyDirection.MAXIMIZE]


def _probe(context: SearchContext) -> tuple[Any, bool, list[optuna.trial.FrozenTrial]]:
    """The storage backend, whether the study is new, and its trials (checked first)."""
    backend = open_storage(context.storage_url)
    directions = _directions(context)
    probe = optuna.create_study(
        storage=backend, study_name=context.study_name, directions=directions, load_if_exists=True
    )
    check_directions(probe, directions)
    options = context.options
    new = check_template(
        probe,
        context.template,
        objective=options.objective,
        cost=options.cost,
        allow_change=options.allow_template_change,
    )
    return backend, new, probe.get_trials(deepcopy=False)


def _known(study: optuna.Study) -> dict[str, asyncio.Future[Outcome]]:
    """Completed results by pipeline fingerprint, so identical configurations are reused."""
    known: dict[str, asyncio.Future[Outcome]] = {}
    loop = asyncio.get_running_loop()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        fingerprint = trial.user_attrs.get(TrialKey.FINGERPRINT)
        if isinstance(fingerprint, str) and fingerprint not in known:
            done: asyncio.Future[Outcome] = loop.create_future()
            results: dict[str, Any] = {
                k: trial.user_attrs[k] for k in COPIED if k in trial.user_attrs
            }
            done.set_result(Outcome(TrialState.COMPLETE, list(trial.values), trial.number, results))
            known[fingerprint] = done
    return known


def open_study(
    context: SearchContext, state: SearchState
) -> tuple[optuna.Study, dict[str, asyncio.Future[Outcome]]]:
    """Create or load the study with its sampler and pruner; enqueue the baseline of a new
    study; recover dead workers' trials. Returns the study and its known results."""
    backend, new, existing = _probe(context)
    options = context.options
    # A fresh single-worker search is reproducible from --seed; resumes and concurrent
    # workers get a different (still derived) seed so they do not repeat each other.
    seed = options.seed + len(existing)
    if any(t.state == TrialState.RUNNING for t in existing):
        seed += context.worker.pid
    sampler = make_sampler(options, context.template, seed, context.budget.trials)
    pruner = make_pruner(options, context.chunk, len(context.trial_items))
    study = optuna.load_study(
        study_name=context.study_name, storage=backend, sampler=sampler, pruner=pruner
    )
    rule = WinnerRecord(options.winner, options.p_threshold)
    study.set_user_attr(StudyKey.WINNER_RULE, rule.as_json())
    if new:
        template = context.template
        defaults = active_params(template, default_assignment(template), context.registry)
        study.enqueue_trial(
            encode_params(template, defaults),
            user_attrs={TrialKey.BASELINE: True},
            skip_if_exists=True,
        )
        widest = active_params(template, widest_assignment(template), context.registry)
        if widest != defaults:
            # the largest sample counts first: smaller ones then reuse its cached samples
            study.enqueue_trial(encode_params(template, widest), skip_if_exists=True)
    state.recovered.extend(recover_stale(study, context.worker, options.stale_after_s))
    state.screen = ItemScreen.from_json(study.user_attrs.get(StudyKey.ITEM_SCREEN))
    return study, _known(study)


def widest_assignment(template: Pipeline) -> dict[str, Value]:
    """The defaults, with every ``samples`` hole at its largest value."""
    assignment = default_assignment(template)
    for ref in holes(template):
        if ref.kind != "param" or not ref.name.endswith(".samples"):
            continue
        hole = ref.hole
        if isinstance(hole, IntRange):
            assignment[ref.name] = hole.high - (hole.high - hole.low) % hole.step
        elif isinstance(hole, Choice):
            numbers = [v for v in hole.options if isinstance(v, int) and not isinstance(v, bool)]
            if numbers:
                assignment[ref.name] = max(numbers)
    return assignment


def update_screen(context: SearchContext, state: SearchState, study: optuna.Study) -> None:
    """Read the item screen once ``screen_after`` trials were evaluated on every trial item
    (see :func:`archon.search.paired.screen_items`), and store it in the study."""
    wanted = context.options.screen_after
    if wanted is None or state.screen is not None:
        return
    evaluated: list[tuple[int, dict[str, float]]] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        scores = item_scores(trial.user_attrs)
        if TrialKey.DUPLICATE_OF in trial.user_attrs or not scores:
            continue
        evaluated.append((trial.number, scores))
    if len(evaluated) < wanted:
        return
    ids = [item_id(item, i) for i, item in enumerate(context.trial_items)]
    screen = screen_items(ids, evaluated[:wanted])
    if screen is not None:
        study.set_user_attr(StudyKey.ITEM_SCREEN, screen.as_json())
        state.screen = screen
        emit(context, "screened", study, message=screen.describe())


def tell(
    study: optuna.Study,
    trial: optuna.Trial,
    values: Sequence[float] | None,
    state: TrialState,
) -> bool:
    """``study.tell``; True when the sampler found its space exhausted.

    An exhaustive sampler (:class:`~optuna.samplers.BruteForceSampler`) calls ``study.stop()``
    from ``after_trial`` once every configuration has been seen, which raises ``RuntimeError``
    outside ``study.optimize()`` -- after the trial has been stored as finished. That
    combination (the sampler's type, the trial's stored state) is what is recognised; any other
    error propagates.
    """
    try:
        study.tell(trial, values, state=state)
    except RuntimeError:
        stored = study.get_trials(deepcopy=False)[trial.number].state
        if not (isinstance(study.sampler, BruteForceSampler) and stored.is_finished()):
            raise
        return True
    return False


class StudyLoop:
    """Keeps ``parallel_trials`` trials in flight until a limit is reached.

    Args:
        context: the run's settings and meters.
        state: the run's stop reason and counters.
        study: the opened study.
        runner: evaluates one trial.
    """

    def __init__(
        self,
        context: SearchContext,
        state: SearchState,
        study: optuna.Study,
        runner: TrialRunner,
    ) -> None:
        self.context = context
        self.state = state
        self.study = study
        self.runner = runner
        self.running: dict[int, optuna.Trial] = {}

    def _counted(self, before: int | None = None) -> int:
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        trials = self.study.get_trials(deepcopy=False, states=states)
        if before is not None:
            trials = [t for t in trials if t.number < before]
        return len(trials)

    def limit_reached(self) -> StopReason | None:
        """The first limit reached (trials, a budget, no new feasible trial), or None.

        The search meter judges its own limits (:meth:`~archon.runtime.Meter.exhausted`): the
        loop stops asking for trials exactly when no further call would fit.
        """
        if self.state.stopped is not None:
            return self.state.stopped
        target = self.context.budget.trials
        if target is not None and self._counted() >= target:
            return StopReason.budget("trials")
        limit = self.context.meter.exhausted()
        if limit is not None:
            return StopReason.budget(limit)
        if self.state.free_streak >= _FREE_STREAK_LIMIT:
            return StopReason.no_feasible()
        return None

    def _tell(self, trial: optuna.Trial, outcome: Outcome) -> None:
        if tell(self.study, trial, outcome.values, outcome.state):
            self.state.stop(StopReason.grid_exhausted())

    def ask(self) -> optuna.Trial | None:
        """A new trial, or None (and the run stops) when another worker took the last slot."""
        trial = self.study.ask()
        target = self.context.budget.trials
        if target is not None and self._counted(before=trial.number) >= target:
            self._tell(trial, Outcome(TrialState.FAIL))
            frozen = self.study.trials[trial.number]
            if "fixed_params" in frozen.system_attrs:
                requeue(self.study, frozen, "surplus trial")
            self.state.stop(StopReason.budget("trials"))
            return None
        return trial

    def _jobs(self) -> Iterator[Job[None]]:
        """Trials to run, asked for only when a slot is free and no limit is reached."""
        while True:
            reason = self.limit_reached()
            if reason is not None:
                self.state.stop(reason)
                return
            trial = self.ask()
            if trial is None:
                return
            yield partial(self.trial_task, trial)

    async def trial_task(self, trial: optuna.Trial) -> None:
        """Run one trial and tell the study; abandon it when cut short."""
        self.running[trial.number] = trial
        emit(self.context, "trial_started", self.study, trial=trial.number)
        try:
            outcome = await self.runner.run(trial)
        except Interrupted as stop:
            self.state.stop(stop.reason)
            self.abandon(trial, f"search {stop.reason} reached")
            return
        except asyncio.CancelledError:
            self.abandon(trial, "search interrupted")
            raise
        finally:
            self.running.pop(trial.number, None)
        self._tell(trial, outcome)
        update_screen(self.context, self.state, self.study)
        self.state.new_trials += 1
        state = "INFEASIBLE" if TrialKey.INFEASIBLE in trial.user_attrs else outcome.state.name
        values = tuple(outcome.values) if outcome.values else None
        number = trial.number
        emit(self.context, "trial_finished", self.study, trial=number, state=state, value=values)

    def abandon(self, trial: optuna.Trial, reason: str) -> None:
        """Fail an unfinished trial and enqueue its parameters again."""
        with contextlib.suppress(
            ValueError, RuntimeError, optuna.exceptions.UpdateFinishedTrialError
        ):
            trial.set_user_attr(TrialKey.STOPPED, reason)
            frozen = self.study.tell(trial, state=TrialState.FAIL)
            requeue(self.study, frozen, reason)

    async def heartbeat(self) -> None:
        """Stamp running trials as alive; recover trials of workers that went silent."""
        options = self.context.options
        while True:
            await asyncio.sleep(options.heartbeat_s)
            now = time.time()
            for trial in list(self.running.values()):
                with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                    trial.set_user_attr(TrialKey.HEARTBEAT, now)
            found = recover_stale(self.study, self.context.worker, options.stale_after_s)
            self.state.recovered.extend(found)

    async def run(self) -> None:
        """Run trials until a limit is reached (every started trial finishes or is abandoned)."""
        beat = asyncio.ensure_future(self.heartbeat())
        try:
            async with contextlib.aclosing(
                in_flight(self._jobs(), self.context.options.parallel_trials)
            ) as finished:
                async for _ in finished:
                    pass
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat


async def search_async(
    template: Pipeline,
    dev: Sequence[object],
    test: Sequence[object],
    *,
    evaluator: Evaluator[Any],
    registry: Registry,
    storage: str | None = None,
    study_name: str | None = None,
    options: SearchOptions | None = None,
    budget: SearchBudget | None = None,
    on_event: EventSink | None = None,
) -> SearchResult:
    """Run one search worker on the current event loop (see :func:`archon.search.search`)."""
    options = options or SearchOptions()
    options.validate()
    budget = budget or SearchBudget()
    if budget.is_empty():
        raise ArchonError("a search needs a limit: give trials, or a calls / usd / seconds budget")
    if not dev:
        raise ArchonError("the dev split is empty: nothing to search on")
    total, meter = meters(budget, options)
    context = SearchContext(
        template=template,
        registry=registry,
        evaluator=evaluator,
        options=options,
        budget=budget,
        dev=dev,
        test=test,
        storage_url=storage,
        study_name=study_name or template.name,
        worker=Worker(),
        total=total,
        meter=meter,
        on_event=on_event,
    )
    state = SearchState()
    study, known = open_study(context, state)
    emit(context, "started", study, message=f"study '{context.study_name}'")
    await StudyLoop(context, state, study, TrialRunner(context, state, known)).run()
    await final_phase(context, state, study)
    stopped = state.stopped or StopReason.done()
    emit(context, "finished", study, message=str(stopped))
    return SearchResult(
        report=summarize(study),
        storage=storage,
        stopped=stopped,
        spent=total.spent,
        cache_hits=state.cache_hits,
        usd_saved=state.usd_saved,
        seconds=time.monotonic() - state.started,
        new_trials=state.new_trials,
        recovered=tuple(state.recovered),
    )
