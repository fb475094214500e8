"""The search loop: K trials in flight on one event loop (ask/tell), budgets, pruning, resume.

One :class:`_Search` runs one worker of a study:

1. open the storage, create or load the study, check the template fingerprint, enqueue the
   template's defaults as trial 0 of a new study, fail and re-enqueue trials of dead workers;
2. keep ``parallel_trials`` trials in flight: ``study.ask()``, materialise the configuration,
   reject it before any call when its static cost estimate is over the per-query budget,
   reuse the result of an identical configuration, otherwise evaluate it on the dev split in
   chunks (``trial.report`` / ``trial.should_prune`` for the quality objective) and
   ``study.tell`` the result;
3. stop at the first limit reached (trials, calls, USD, seconds, exhausted grid); a trial cut
   short by the search budget or by an interrupt is failed and re-enqueued, never judged;
4. re-evaluate the best configuration(s) and the baseline on the held-out test split.

All trials share the evaluator (one ``Limits``, one ``CallCache``) and one run-level
:class:`~archon.runtime.Meter` that reserves before every call, so the budget is never
exceeded. Storage calls are short and synchronous, made from the loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from archon.compiler.cost import estimate
from archon.compiler.structure import AssignmentError, HoleRef, default_assignment, resolve
from archon.compiler.structure import defaults_chooser as _defaults_chooser
from archon.errors import ArchonError
from archon.ir import Budget, Pipeline, Value, strip_spans
from archon.layers.registry import Registry
from archon.runtime import Meter
from archon.search.config import (
    SearchBudget,
    SearchOptions,
    chunk_size_for,
    make_pruner,
    make_sampler,
)
from archon.search.objective import Evaluator, Progress
from archon.search.report import SearchResult, best_trials, summarize
from archon.search.space import SearchSpaceError, encode_params, materialize
from archon.search.storage import (
    TEST_PREFIX,
    Worker,
    check_directions,
    check_template,
    open_storage,
    recover_stale,
    requeue,
    test_results,
)
from archon.values import Usage

logger = logging.getLogger(__name__)

_FREE_STREAK_LIMIT = 200  # consecutive infeasible/duplicate trials before giving up


@dataclass(frozen=True)
class SearchEvent:
    """Progress notifications for a live display (``on_event`` callback).

    Attributes:
        kind: ``started``, ``trial_started``, ``trial_finished``, ``testing``, ``finished``.
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


@dataclass
class _Outcome:
    state: TrialState
    values: list[float] | None = None
    number: int | None = None  # the trial that was evaluated (for duplicates)
    results: dict[str, Any] = field(default_factory=dict)  # its score, items, cost per query


_COPIED = ("items", "score", "cost_per_query")


class _Interrupted(Exception):
    """Internal: a trial stopped because the search budget ran out mid-evaluation."""


def _scaled(budget: SearchBudget, keep: float) -> Budget:
    def part(value: float | None) -> float | None:
        return None if value is None else value * (1.0 - keep)

    calls = part(budget.calls)
    return Budget(
        calls=None if calls is None else math.floor(calls),
        usd=part(budget.usd),
        seconds=part(budget.seconds),
    )


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


class _Search:
    def __init__(
        self,
        template: Pipeline,
        dev: Sequence[object],
        test: Sequence[object],
        evaluator: Evaluator[Any],
        registry: Registry,
        storage: str | None,
        study_name: str,
        options: SearchOptions,
        budget: SearchBudget,
        on_event: EventSink | None,
    ) -> None:
        self.template = template
        self.dev = dev
        self.test = test
        self.evaluator = evaluator
        self.registry = registry
        self.storage_url = storage
        self.study_name = study_name
        self.options = options
        self.budget = budget
        self.on_event = on_event
        self.worker = Worker()
        self.total = Meter(
            Budget(calls=budget.calls, usd=budget.usd, seconds=budget.seconds), scope="run"
        )
        self.meter = Meter(_scaled(budget, options.test_reserve), scope="run", parent=self.total)
        self.chunk = chunk_size_for(options, len(dev))
        self.pareto = options.objective == "pareto"
        self.stopped: str | None = None
        self.running: dict[int, optuna.Trial] = {}
        self.by_fingerprint: dict[str, asyncio.Future[_Outcome]] = {}
        self.cache_hits = 0
        self.usd_saved = 0.0
        self.new_trials = 0
        self.free_streak = 0
        self.best: float | None = None
        self.recovered: list[int] = []
        self.started = time.monotonic()

    # --- set-up ---------------------------------------------------------------------------

    def open(self) -> optuna.Study:
        directions = (
            [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]
            if self.pareto
            else [StudyDirection.MAXIMIZE]
        )
        backend = open_storage(self.storage_url)
        probe = optuna.create_study(
            storage=backend,
            study_name=self.study_name,
            directions=directions,
            load_if_exists=True,
        )
        check_directions(probe, directions)
        new = check_template(
            probe,
            self.template,
            objective=self.options.objective,
            cost=self.options.cost,
            allow_change=self.options.allow_template_change,
        )
        existing = probe.get_trials(deepcopy=False)
        others = [t for t in existing if t.state == TrialState.RUNNING]
        # A fresh single-worker search is reproducible from --seed; resumes and concurrent
        # workers get a different (still derived) seed so they do not repeat each other.
        seed = self.options.seed + len(existing)
        if others:
            seed += self.worker.pid
        sampler = make_sampler(self.options, self.template, seed, self.budget.trials)
        pruner = make_pruner(self.options, self.chunk, len(self.dev))
        study = optuna.load_study(
            study_name=self.study_name, storage=backend, sampler=sampler, pruner=pruner
        )
        if new:
            defaults = active_params(
                self.template, default_assignment(self.template), self.registry
            )
            study.enqueue_trial(
                encode_params(self.template, defaults),
                user_attrs={"baseline": True},
                skip_if_exists=True,
            )
        self.recovered += recover_stale(study, self.worker, self.options.stale_after_s)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            fingerprint = trial.user_attrs.get("fingerprint")
            if isinstance(fingerprint, str) and fingerprint not in self.by_fingerprint:
                done: asyncio.Future[_Outcome] = asyncio.get_running_loop().create_future()
                results = {k: trial.user_attrs[k] for k in _COPIED if k in trial.user_attrs}
                done.set_result(
                    _Outcome(TrialState.COMPLETE, list(trial.values), trial.number, results)
                )
                self.by_fingerprint[fingerprint] = done
        self._update_best(study)
        return study

    # --- bookkeeping ----------------------------------------------------------------------

    def _emit(self, kind: str, study: optuna.Study, **fields: Any) -> None:
        if self.on_event is None:
            return
        done = len(
            study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        )
        self.on_event(
            SearchEvent(
                kind=kind,
                trials_done=done,
                trials_target=self.budget.trials,
                best=self.best,
                spent=self.total.spent,
                **fields,
            )
        )

    def _update_best(self, study: optuna.Study) -> None:
        best = best_trials(study)
        if best:
            self.best = best[0].values[0]

    def _counted(self, study: optuna.Study, before: int | None = None) -> int:
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        trials = study.get_trials(deepcopy=False, states=states)
        if before is not None:
            trials = [t for t in trials if t.number < before]
        return len(trials)

    def _limit_reached(self, study: optuna.Study) -> str | None:
        if self.stopped is not None:
            return self.stopped
        target = self.budget.trials
        if target is not None and self._counted(study) >= target:
            return "trials"
        limits = self.meter.budget
        spent = self.meter.spent
        if limits.calls is not None and spent.calls + self.meter.held.calls >= limits.calls:
            return "calls budget"
        if limits.usd is not None and spent.usd >= limits.usd:
            return "usd budget"
        if limits.seconds is not None and self.meter.seconds >= limits.seconds:
            return "seconds budget"
        if self.free_streak >= _FREE_STREAK_LIMIT:
            return "no new feasible configuration"
        return None

    def _tell(self, study: optuna.Study, trial: optuna.Trial, outcome: _Outcome) -> None:
        try:
            study.tell(trial, outcome.values, state=outcome.state)
        except RuntimeError as error:
            # Exhaustive samplers call study.stop() once every configuration has been seen;
            # outside study.optimize() that raises, after the trial has been stored.
            if "stop" not in str(error).lower():
                raise
            self.stopped = "grid exhausted"

    # --- one trial ------------------------------------------------------------------------

    def _infeasible(self, concrete: Pipeline) -> tuple[str | None, int, int]:
        cost = estimate(concrete, self.registry)
        limits: list[tuple[str, int | None, int]] = [
            ("calls", self.template.budget.calls, cost.calls),
            ("tokens", self.template.budget.tokens, cost.tokens),
            ("calls", self.options.max_calls_per_query, cost.calls),
            ("tokens", self.options.max_tokens_per_query, cost.tokens),
        ]
        for name, limit, value in limits:
            if limit is not None and value > limit:
                return (
                    f"estimated {value} {name} per query > budget {limit}",
                    cost.calls,
                    cost.tokens,
                )
        return None, cost.calls, cost.tokens

    async def _run_trial(self, study: optuna.Study, trial: optuna.Trial) -> _Outcome:
        trial.set_user_attr("worker", self.worker.attrs())
        trial.set_user_attr("heartbeat", time.time())
        try:
            concrete = materialize(self.template, trial, self.registry)
        except (AssignmentError, SearchSpaceError, ValueError) as error:
            trial.set_user_attr("error", str(error))
            logger.warning("trial %d: %s", trial.number, error)
            return _Outcome(TrialState.FAIL)
        fingerprint = concrete.fingerprint()
        trial.set_user_attr("fingerprint", fingerprint)
        trial.set_user_attr("pipeline", json.dumps(strip_spans(concrete), separators=(",", ":")))
        reason, calls, tokens = self._infeasible(concrete)
        trial.set_user_attr("est_calls", calls)
        trial.set_user_attr("est_tokens", tokens)
        if reason is not None:
            trial.set_user_attr("infeasible", reason)
            self.free_streak += 1
            return _Outcome(TrialState.PRUNED)
        earlier = self.by_fingerprint.get(fingerprint)
        if earlier is not None:
            outcome = await asyncio.shield(earlier)
            if outcome.state == TrialState.COMPLETE:
                trial.set_user_attr("duplicate_of", outcome.number)
                for key, value in outcome.results.items():
                    trial.set_user_attr(key, value)
                self.free_streak += 1
                return _Outcome(TrialState.COMPLETE, outcome.values)
        mine: asyncio.Future[_Outcome] = asyncio.get_running_loop().create_future()
        self.by_fingerprint[fingerprint] = mine
        try:
            outcome = await self._evaluate(trial, concrete)
        except BaseException:
            mine.set_result(_Outcome(TrialState.FAIL))
            self.by_fingerprint.pop(fingerprint, None)
            raise
        outcome.number = trial.number
        mine.set_result(outcome)
        if outcome.state != TrialState.COMPLETE:
            self.by_fingerprint.pop(fingerprint, None)
        self.free_streak = 0
        return outcome

    async def _evaluate(self, trial: optuna.Trial, concrete: Pipeline) -> _Outcome:
        last = Progress(0, 0.0)
        pruned = False
        chunks = self.evaluator.evaluate_chunks(
            concrete, self.dev, chunk_size=self.chunk, budget=self.meter
        )
        async with contextlib.aclosing(chunks):  # pruning stops the items in flight at once
            async for progress in chunks:
                last = progress
                if progress.stopped is not None:
                    break
                if not self.pareto and progress.items_done:
                    trial.report(progress.score, step=progress.items_done)
                    # a trial evaluated on the whole split is a full result: never prune it
                    if progress.items_done < len(self.dev) and trial.should_prune():
                        pruned = True
                        break
        self._record(trial, last)
        if last.stopped is not None:
            raise _Interrupted(last.stopped)
        if pruned:
            return _Outcome(TrialState.PRUNED)
        if not last.items_done:
            trial.set_user_attr("error", "no dev item was evaluated")
            return _Outcome(TrialState.FAIL)
        results = {
            "items": last.items_done,
            "score": last.score,
            "cost_per_query": self._cost(last),
        }
        values = [last.score] if not self.pareto else [last.score, self._cost(last)]
        return _Outcome(TrialState.COMPLETE, values, trial.number, results)

    def _cost(self, progress: Progress) -> float:
        if not progress.items_done:
            return 0.0
        if self.options.cost == "usd":
            return progress.usd_equivalent / progress.items_done
        return progress.calls_equivalent / progress.items_done

    def _record(self, trial: optuna.Trial, progress: Progress) -> None:
        self.cache_hits += progress.cache_hits
        self.usd_saved += max(0.0, progress.usd_equivalent - progress.usd)
        attrs = {
            "items": progress.items_done,
            "score": progress.score,
            "calls": progress.calls,
            "cache_hits": progress.cache_hits,
            "tokens": progress.tokens,
            "usd": progress.usd,
            "usd_equivalent": progress.usd_equivalent,
            "failed_items": progress.failed,
            "cost_per_query": self._cost(progress),
        }
        for key, value in attrs.items():
            trial.set_user_attr(key, value)

    async def _trial_task(self, study: optuna.Study, trial: optuna.Trial) -> None:
        self.running[trial.number] = trial
        self._emit("trial_started", study, trial=trial.number)
        try:
            outcome = await self._run_trial(study, trial)
        except _Interrupted as stop:
            self.stopped = self.stopped or f"{stop} budget"
            self._abandon(study, trial, f"search {stop} budget reached")
            return
        except asyncio.CancelledError:
            self._abandon(study, trial, "search interrupted")
            raise
        finally:
            self.running.pop(trial.number, None)
        self._tell(study, trial, outcome)
        self.new_trials += 1
        self._update_best(study)
        infeasible = "infeasible" in trial.user_attrs
        state = "INFEASIBLE" if infeasible else outcome.state.name
        self._emit(
            "trial_finished",
            study,
            trial=trial.number,
            state=state,
            value=tuple(outcome.values) if outcome.values else None,
        )

    def _abandon(self, study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
        """Fail an unfinished trial and enqueue its parameters again."""
        with contextlib.suppress(
            ValueError, RuntimeError, optuna.exceptions.UpdateFinishedTrialError
        ):
            trial.set_user_attr("stopped", reason)
            frozen = study.tell(trial, state=TrialState.FAIL)
            requeue(study, frozen, reason)

    # --- the loop -------------------------------------------------------------------------

    async def _heartbeat(self, study: optuna.Study) -> None:
        while True:
            await asyncio.sleep(self.options.heartbeat_s)
            now = time.time()
            for trial in list(self.running.values()):
                with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                    trial.set_user_attr("heartbeat", now)
            self.recovered += recover_stale(study, self.worker, self.options.stale_after_s)

    def _ask(self, study: optuna.Study) -> optuna.Trial | None:
        trial = study.ask()
        target = self.budget.trials
        if target is not None and self._counted(study, before=trial.number) >= target:
            # Another worker took the last slot between our count and our ask.
            self._tell(study, trial, _Outcome(TrialState.FAIL))
            frozen = study.trials[trial.number]
            if "fixed_params" in frozen.system_attrs:
                requeue(study, frozen, "surplus trial")
            self.stopped = "trials"
            return None
        return trial

    async def run(self) -> SearchResult:
        study = self.open()
        self._emit("started", study, message=f"study '{self.study_name}'")
        tasks: set[asyncio.Task[None]] = set()
        beat = asyncio.create_task(self._heartbeat(study))
        try:
            while True:
                while len(tasks) < self.options.parallel_trials:
                    reason = self._limit_reached(study)
                    if reason is not None:
                        self.stopped = reason
                        break
                    trial = self._ask(study)
                    if trial is None:
                        break
                    tasks.add(asyncio.create_task(self._trial_task(study, trial)))
                if not tasks:
                    break
                done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
        finally:
            beat.cancel()
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        await self._test_phase(study)
        self._emit("finished", study, message=self.stopped or "done")
        return SearchResult(
            report=summarize(study),
            storage=self.storage_url,
            stopped=self.stopped or "done",
            spent=self.total.spent,
            cache_hits=self.cache_hits,
            usd_saved=self.usd_saved,
            seconds=time.monotonic() - self.started,
            new_trials=self.new_trials,
            recovered=tuple(self.recovered),
        )

    # --- held-out test --------------------------------------------------------------------

    def _test_candidates(self, study: optuna.Study) -> list[FrozenTrial]:
        chosen = best_trials(study)[: max(1, self.options.test_top if self.pareto else 1)]
        baseline = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("baseline")
        ]
        seen: set[str] = set()
        unique = []
        for trial in chosen + baseline[:1]:
            fingerprint = str(trial.user_attrs.get("fingerprint"))
            if fingerprint not in seen:
                seen.add(fingerprint)
                unique.append(trial)
        return unique

    async def _test_phase(self, study: optuna.Study) -> None:
        if not self.test:
            return
        done = test_results(study)
        by_fingerprint = {
            str(study.trials[n].user_attrs.get("fingerprint")): r
            for n, r in done.items()
            if n < len(study.trials)
        }
        for trial in self._test_candidates(study):
            if trial.number in done:
                continue
            fingerprint = str(trial.user_attrs.get("fingerprint"))
            if fingerprint in by_fingerprint:
                study.set_user_attr(f"{TEST_PREFIX}{trial.number}", by_fingerprint[fingerprint])
                continue
            text = trial.user_attrs.get("pipeline")
            if not isinstance(text, str):
                continue
            pipeline = Pipeline.model_validate_json(text)
            self._emit("testing", study, trial=trial.number, message="held-out test split")
            last = Progress(0, 0.0)
            chunks = self.evaluator.evaluate_chunks(
                pipeline, self.test, chunk_size=max(1, len(self.test)), budget=self.total
            )
            async with contextlib.aclosing(chunks):
                async for progress in chunks:
                    last = progress
            self.cache_hits += last.cache_hits
            self.usd_saved += max(0.0, last.usd_equivalent - last.usd)
            if last.stopped is not None:
                logger.warning(
                    "test re-evaluation of trial %d stopped: %s", trial.number, last.stopped
                )
                self.stopped = self.stopped or f"{last.stopped} budget"
                break
            result = {"score": last.score, "items": last.items_done, "calls": last.calls}
            study.set_user_attr(f"{TEST_PREFIX}{trial.number}", result)
            by_fingerprint[fingerprint] = result


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
    worker = _Search(
        template,
        dev,
        test,
        evaluator,
        registry,
        storage,
        study_name or template.name,
        options,
        budget,
        on_event,
    )
    return await worker.run()
