"""Search settings (:class:`SearchOptions`, :class:`SearchBudget`) and the Optuna sampler and
pruner they select."""

from __future__ import annotations

import importlib.util
import math
import warnings
from dataclasses import dataclass
from typing import Literal

import optuna
from optuna.pruners import (
    BasePruner,
    HyperbandPruner,
    NopPruner,
    SuccessiveHalvingPruner,
    WilcoxonPruner,
)
from optuna.samplers import (
    BaseSampler,
    BruteForceSampler,
    CmaEsSampler,
    NSGAIISampler,
    RandomSampler,
    TPESampler,
)

from archon.errors import ArchonError
from archon.ir import Pipeline
from archon.search.paired import MIN_PAIRS
from archon.search.record import TrialKey, as_float
from archon.search.space import check_grid

Objective = Literal["quality", "pareto"]
CostUnit = Literal["calls", "usd"]
SamplerName = Literal["tpe", "random", "grid", "gp", "cmaes", "nsga2"]
PrunerName = Literal["paired", "sha", "hyperband", "none"]
WinnerRule = Literal["paired", "best"]

SAMPLERS: tuple[SamplerName, ...] = ("tpe", "random", "grid", "gp", "cmaes", "nsga2")
PRUNERS: tuple[PrunerName, ...] = ("paired", "sha", "hyperband", "none")


class SearchConfigError(ArchonError):
    """The search settings do not fit together (or need a package that is missing)."""


@dataclass(frozen=True)
class SearchBudget:
    """Limits for one ``search`` call (one worker); it stops cleanly at the first one reached.

    Attributes:
        trials: finished (complete or pruned) plus running trials the *study* should hold;
            a resumed search runs only the missing ones, and workers sharing a study share
            this count.
        calls: model calls (cache hits are free), test re-evaluation included.
        usd: dollars, test re-evaluation included.
        seconds: wall time, test re-evaluation included.
    """

    trials: int | None = None
    calls: int | None = None
    usd: float | None = None
    seconds: float | None = None

    def is_empty(self) -> bool:
        return all(v is None for v in (self.trials, self.calls, self.usd, self.seconds))


@dataclass(frozen=True)
class SearchOptions:
    """How to search.

    Attributes:
        objective: ``quality`` (maximise the metric, with pruning) or ``pareto`` (maximise the
            metric and minimise cost per query; no pruning: Optuna cannot prune multi-objective
            studies).
        cost: the cost of the pareto objective: model ``calls`` or ``usd`` per query (cache
            hits count at what they would have cost).
        sampler: ``tpe`` (default), ``random``, ``grid`` (every configuration of the
            conditional space once), ``gp``, ``cmaes`` (single objective), ``nsga2`` (pareto).
        pruner: ``paired`` (default): a trial is pruned when its per-item scores are
            significantly below the best trial's on the same items (one-sided Wilcoxon,
            ``p_threshold``; pareto studies: below a trial that costs no more per query);
            ``sha`` (successive halving) or ``hyperband`` on running means (quality only), or
            ``none``.
        p_threshold: the paired pruner's p-value threshold, and the paired winner rule's.
        winner: quality objective: ``paired`` (default): the best promoted trial replaces the
            baseline (the template's defaults) only when it is significantly better on the
            whole dev split, paired by item (one-sided Wilcoxon, p below ``p_threshold``);
            otherwise the baseline stays the winner, since a better score on the items the
            choice was made on is expected by chance alone. ``best``: the highest score wins.
        screen_after: with the paired pruner, once this many trials were evaluated on every
            trial item, the items all of them scored the same on are dropped for later trials
            (and credited with that score; promotion re-evaluates on every item). None: off.
        max_mean_calls: a constraint, not a penalty: a trial whose measured mean calls per
            query (cache hits included) exceeds it is infeasible; samplers that support
            constraints (tpe, nsga2) steer away from it and it is never the winner.
        seed: sampler seed (a fresh single-worker search is reproducible).
        parallel_trials: trials evaluated at once on the one event loop.
        chunk_size: dev items per pruning step (default: a ninth of the dev split).
        max_calls_per_query / max_tokens_per_query: reject configurations whose static
            estimate exceeds these (the template's ``budget`` applies too).
        allow_template_change: continue a study whose template changed (recorded).
        trial_items: dev items each trial is evaluated on (the first N of the dev split;
            default: all of it). With fewer, successive halving prunes within these items and
            the best ``promote_top`` trials plus the baseline are then re-evaluated on the
            whole dev split, where the winner is chosen (quality objective).
        promote_top: how many of the best trials are promoted to the whole dev split.
        baselines: also evaluate, on the test split, one greedy sample of every model the
            winner uses and equal-cost repeated sampling (majority vote) of the best of them
            (:mod:`archon.eval.baselines`), for the report's comparison.
        test_top: how many of the best trials (pareto: of the front) to re-evaluate on test.
        test_reserve: fraction of the calls / USD / seconds budgets kept for the final phase
            (promotion to the whole dev split, the test split, the baselines).
        heartbeat_s / stale_after_s: liveness stamps on running trials, and the age after
            which another worker may fail and retry a trial whose worker went silent.
    """

    objective: Objective = "quality"
    cost: CostUnit = "calls"
    sampler: SamplerName = "tpe"
    pruner: PrunerName = "paired"
    p_threshold: float = 0.1
    winner: WinnerRule = "paired"
    screen_after: int | None = None
    max_mean_calls: float | None = None
    seed: int = 0
    parallel_trials: int = 1
    chunk_size: int | None = None
    max_calls_per_query: int | None = None
    max_tokens_per_query: int | None = None
    allow_template_change: bool = False
    trial_items: int | None = None
    promote_top: int = 3
    baselines: bool = False
    test_top: int = 3
    test_reserve: float = 0.2
    heartbeat_s: float = 15.0
    stale_after_s: float = 120.0

    def validate(self) -> None:
        """Raise :class:`SearchConfigError` for contradictory settings."""
        if self.objective not in ("quality", "pareto"):
            raise SearchConfigError(f"unknown objective {self.objective!r}: quality or pareto")
        if self.cost not in ("calls", "usd"):
            raise SearchConfigError(f"unknown cost {self.cost!r}: calls or usd")
        if self.sampler not in SAMPLERS:
            raise SearchConfigError(
                f"unknown sampler {self.sampler!r}: one of {', '.join(SAMPLERS)}"
            )
        if self.pruner not in PRUNERS:
            raise SearchConfigError(f"unknown pruner {self.pruner!r}: one of {', '.join(PRUNERS)}")
        if not 0.0 < self.p_threshold < 1.0:
            raise SearchConfigError("p_threshold must be in (0, 1)")
        if self.winner not in ("paired", "best"):
            raise SearchConfigError(f"unknown winner rule {self.winner!r}: paired or best")
        if self.screen_after is not None and self.screen_after < 2:
            raise SearchConfigError("screen_after must be at least 2")
        if self.screen_after is not None and self.pruner in ("sha", "hyperband"):
            raise SearchConfigError(
                "item screening needs the paired pruner (or none): successive halving compares"
                " running means, which a smaller item set would skew"
            )
        if self.max_mean_calls is not None and self.max_mean_calls <= 0:
            raise SearchConfigError("max_mean_calls must be positive")
        if self.parallel_trials < 1:
            raise SearchConfigError("parallel_trials must be at least 1")
        if self.trial_items is not None and self.trial_items < 1:
            raise SearchConfigError("trial_items must be at least 1")
        if self.promote_top < 0:
            raise SearchConfigError("promote_top must be at least 0")
        if not 0.0 <= self.test_reserve < 1.0:
            raise SearchConfigError("test_reserve must be in [0, 1)")
        if self.objective == "pareto" and self.sampler == "cmaes":
            raise SearchConfigError(
                "the cmaes sampler optimises one objective; for --objective pareto use tpe or nsga2"
            )
        if self.objective == "quality" and self.sampler == "nsga2":
            raise SearchConfigError("nsga2 is a multi-objective sampler: use --objective pareto")


def chunk_size_for(options: SearchOptions, dev_items: int) -> int:
    """Dev items per pruning step: given, else a ninth of the split (rungs at 1/9, 1/3, all)."""
    if options.chunk_size is not None:
        return max(1, options.chunk_size)
    return max(1, math.ceil(dev_items / 9))


def _need(module: str, sampler: str, packages: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise SearchConfigError(
            f"the {sampler} sampler needs {packages}: pip install {packages}"
            " (or choose --sampler tpe)"
        )


def constraint_of(trial: optuna.trial.FrozenTrial) -> tuple[float, ...]:
    """The trial's constraint values for Optuna's samplers (none recorded: feasible)."""
    value = as_float(trial.user_attrs.get(TrialKey.CONSTRAINT))
    return (value,) if value is not None else (0.0,)


def make_sampler(
    options: SearchOptions, template: Pipeline, seed: int, trials: int | None
) -> BaseSampler:
    """The Optuna sampler for ``options`` (seeded with ``seed``)."""
    name = options.sampler
    constraints = constraint_of if options.max_mean_calls is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "random":
            return RandomSampler(seed=seed)
        if name == "grid":
            check_grid(template)
            # BruteForceSampler enumerates the *conditional* space (a repeat copy's holes only
            # when the copy is active); GridSampler would revisit configurations that differ
            # only in inactive holes.
            return BruteForceSampler(seed=seed)
        if name == "nsga2":
            population = 50 if trials is None else max(4, min(50, trials // 4))
            return NSGAIISampler(
                seed=seed, population_size=population, constraints_func=constraints
            )
        if name == "cmaes":
            _need("cmaes", "cmaes", "cmaes")
            return CmaEsSampler(
                seed=seed,
                independent_sampler=TPESampler(seed=seed),
                warn_independent_sampling=False,
            )
        if name == "gp":
            _need("torch", "gp", "torch scipy")
            _need("scipy", "gp", "torch scipy")
            from optuna.samplers import GPSampler

            return GPSampler(seed=seed)
        # Independent (univariate) TPE: on the benchmark landscape it reached 95 % of the
        # optimum in 28 trials on average, multivariate+group TPE in 85 (it got stuck on 2 of
        # 12 seeds); bench/results/search.md. The constant liar spreads parallel trials.
        return TPESampler(
            seed=seed, constant_liar=options.parallel_trials > 1, constraints_func=constraints
        )


def make_pruner(options: SearchOptions, chunk: int, dev_items: int) -> BasePruner:
    """Optuna's pruner: Wilcoxon on per-item values for ``paired``, successive halving or
    Hyperband on running means; none for pareto studies (their paired rule is
    :func:`archon.search.paired.dominated`, applied by the trial runner)."""
    if options.objective == "pareto" or options.pruner == "none" or dev_items <= chunk:
        return NopPruner()
    if options.pruner == "paired":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return WilcoxonPruner(p_threshold=options.p_threshold, n_startup_steps=MIN_PAIRS)
    if options.pruner == "hyperband":
        return HyperbandPruner(min_resource=chunk, max_resource=dev_items, reduction_factor=3)
    return SuccessiveHalvingPruner(min_resource=chunk, reduction_factor=3)
