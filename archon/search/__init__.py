"""Architecture search: Optuna studies over the holes of a ``.pipe`` template.

``search(template, dataset, ...)`` tunes a template's holes (``choice``, ``int``, ``float``,
``optional`` layers, ``repeat`` counts) on the dev split of a dataset, within a budget, and
re-evaluates the best configuration(s) on the held-out test split. The study is an ordinary
Optuna study (SQLite, PostgreSQL or a journal file): resumable, shareable by several workers,
viewable with ``optuna-dashboard``.

Example::

    from archon.eval import EvalConfig
    from archon.search import SearchBudget, SearchOptions, search
    result = search(
        template, dataset, EvalConfig.of(client=client),
        storage="sqlite:///moa.study.db",
        budget=SearchBudget(trials=30, calls=5000),
        options=SearchOptions(objective="quality", sampler="tpe", seed=0),
    )
    print(result.best[0].dev_score, result.best[0].test_score)
    concrete = result.best_pipeline()

optuna is imported only inside this package.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from archon.errors import ArchonError, not_positive
from archon.eval.config import EvalConfig
from archon.eval.items import Dataset, EvalItem
from archon.eval.splits import select_split
from archon.ir import Pipeline
from archon.layers.registry import Registry
from archon.search.config import (
    PRUNERS,
    SAMPLERS,
    SearchBudget,
    SearchConfigError,
    SearchOptions,
)
from archon.search.driver import EventSink, SearchEvent, search_async
from archon.search.objective import EvalEvaluator, Evaluator, Progress, RuntimeEvaluator
from archon.search.report import (
    SearchResult,
    StudyReport,
    TrialSummary,
    load_report,
    ranked,
    summarize,
)
from archon.search.space import (
    SearchSpaceError,
    decode_params,
    encode_params,
    materialize,
    replay,
    search_space,
)
from archon.search.storage import StudyMismatch, default_storage_url

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "EvalEvaluator",
    "Evaluator",
    "Progress",
    "RuntimeEvaluator",
    "SearchBudget",
    "SearchConfigError",
    "SearchEvent",
    "SearchOptions",
    "SearchResult",
    "SearchSpaceError",
    "StudyMismatch",
    "StudyReport",
    "TrialSummary",
    "as_dataset",
    "decode_params",
    "default_storage_url",
    "encode_params",
    "load_report",
    "materialize",
    "ranked",
    "replay",
    "search",
    "search_async",
    "search_space",
    "split_dataset",
    "summarize",
]


def split_dataset(
    dataset: Dataset | tuple[Sequence[EvalItem], Sequence[EvalItem]],
    *,
    limit: int | None = None,
    dev_fraction: float = 0.5,
    split_seed: int = 0,
) -> tuple[tuple[EvalItem, ...], tuple[EvalItem, ...]]:
    """Dev and test items: the dataset's seeded hash split, each cut to ``limit`` items."""
    if limit is not None and limit < 1:
        raise SearchConfigError(f"limit must be at least 1, not {limit}")
    if not 0 < dev_fraction < 1:
        raise SearchConfigError(f"dev_fraction must be between 0 and 1, not {dev_fraction}")
    if isinstance(dataset, Dataset):
        dev = select_split(dataset, "dev", seed=split_seed, dev_fraction=dev_fraction).items
        test = select_split(dataset, "test", seed=split_seed, dev_fraction=dev_fraction).items
    else:
        dev, test = tuple(dataset[0]), tuple(dataset[1])
    if limit is not None:
        dev, test = dev[:limit], test[:limit]
    return tuple(dev), tuple(test)


def check_budget(budget: SearchBudget) -> None:
    """Raise SearchConfigError for a budget no search can keep (zero or negative limits)."""
    for name in ("trials", "calls", "usd", "seconds"):
        problem = not_positive(getattr(budget, name), f"budget {name}")
        if problem is not None:
            raise SearchConfigError(problem)


def as_dataset(
    dataset: Dataset | tuple[Sequence[EvalItem], Sequence[EvalItem]], metric: str | None
) -> Dataset:
    """``dataset`` itself, or an explicit (dev, test) pair as one :class:`Dataset`."""
    if isinstance(dataset, Dataset):
        return dataset
    items = (*dataset[0], *dataset[1])
    return Dataset(name="search", items=items, metric=metric or "exact_match")


def search(
    template: Pipeline,
    dataset: Dataset | tuple[Sequence[EvalItem], Sequence[EvalItem]],
    config: EvalConfig | None = None,
    *,
    evaluator: Evaluator[Any] | None = None,
    registry: Registry | None = None,
    storage: str | None = None,
    study: str | None = None,
    options: SearchOptions | None = None,
    budget: SearchBudget | None = None,
    limit: int | None = None,
    dev_fraction: float = 0.5,
    split_seed: int = 0,
    on_event: EventSink | None = None,
    close_client: bool = False,
) -> SearchResult:
    """Search the holes of ``template`` on ``dataset``'s dev split; report on its test split.

    Args:
        template: a compiled pipeline with holes (the defaults are trial 0).
        dataset: an :class:`~archon.eval.items.Dataset` (split by a seeded hash of item ids)
            or an explicit ``(dev_items, test_items)`` pair.
        config: how each configuration is evaluated (:class:`~archon.eval.EvalConfig`: the
            client, limits and cache shared by every trial, the metric, the run seed ...);
            needed unless ``evaluator`` is given.
        evaluator: how a configuration is scored instead (default: an
            :class:`~archon.search.objective.EvalEvaluator` over ``config``); e.g.
            :class:`archon.search.simulator.SimulatedEvaluator`.
        registry: layer kinds (default: ``config.env.registry``, else the built-in ones).
        storage: ``sqlite:///file.db``, ``postgresql://...``, ``journal:file.log`` or None
            (in memory).
        study: study name (default: the template's pipeline name).
        options: objective, sampler, pruner, seed, parallelism (:class:`SearchOptions`).
        budget: trials, calls, USD, seconds (:class:`SearchBudget`); at least one is needed.
        limit: at most this many dev and this many test items.
        dev_fraction / split_seed: how a ``Dataset`` is split.
        on_event: called with a :class:`SearchEvent` as trials start and finish.
        close_client: close ``config.env.client`` on the search's event loop when it ends (for
            callers that hand the client over, like the CLI).

    Returns:
        A :class:`SearchResult`: the study's trials, the best one(s) with dev and test scores,
        the baseline, and what this search spent.

    Raises:
        StudyMismatch: the stored study has another template or objective.
        SearchConfigError, SearchSpaceError: settings that cannot work.
    """
    if budget is not None:
        check_budget(budget)
    registry = registry or (config.env.registry if config is not None else None)
    if registry is None:
        from archon.layers import default_registry

        registry = default_registry()
    dev, test = split_dataset(
        dataset, limit=limit, dev_fraction=dev_fraction, split_seed=split_seed
    )
    if evaluator is None:
        if config is None:
            raise ArchonError("search needs an EvalConfig with a model client (or an evaluator)")
        metric = config.metric if isinstance(config.metric, str) else None
        evaluator = EvalEvaluator(as_dataset(dataset, metric), config.replace(registry=registry))

    async def go() -> SearchResult:
        try:
            return await search_async(
                template,
                dev,
                test,
                evaluator=evaluator,
                registry=registry,
                storage=storage,
                study_name=study,
                options=options,
                budget=budget,
                on_event=on_event,
            )
        finally:
            if close_client and config is not None:
                await config.env.client.aclose()

    return asyncio.run(go())
