"""How an evaluation runs: one frozen :class:`EvalConfig` taken by every evaluation entry point
(:func:`~archon.eval.evaluate`, :func:`~archon.eval.evaluate_iter`,
:func:`~archon.eval.evaluate_chunks`), by search's evaluator and by the CLI.

The same options used to travel as twenty keywords through three signatures; one value keeps
their types and their defaults in one place. Derive a variant with :meth:`EvalConfig.replace`
(search does, to give each trial its own budget meter and trace sink).

Example::

    config = EvalConfig(client=client, limits=Limits(), concurrency=4)
    result = await evaluate(pipeline, dataset, config)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archon.eval.metrics import Metric, MetricOptions, MetricRegistry, sandbox_runner
from archon.eval.metrics.base import CodeRunner
from archon.eval.summary import PASS_K
from archon.ir import Budget
from archon.layers.registry import Registry
from archon.runtime import CallCache, Limits, Meter, ModelClient, TraceSink


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """Everything an evaluation needs besides the pipeline and the dataset.

    Attributes:
        client: where the pipeline's model calls go; also the judge's unless
            ``judge_client`` is given.
        limits: shared concurrency/timeout/retry limits (default: a fresh ``Limits()``).
        cache: the persistent call cache (pipeline and judge calls).
        metric: a metric name or instance (default: the dataset's metric).
        concurrency: items in flight at once.
        budget: a run-level budget (or a shared meter) over all items; exhausting it stops
            the evaluation cleanly.
        records_path: JSONL file receiving one record per item as it finishes.
        resume: keep the records already in ``records_path`` and skip their items.
        registry: layer kinds (default: the built-in ones).
        metrics / metric_options: how a metric name is built.
        judge_client: client for the metric's own model calls (default: ``client``).
        runner: code execution for the ``code`` metric (default: the sandbox).
        score_candidates: score every candidate for pass@k and coverage (default: when the
            metric calls no model).
        pass_k: the k of the pass@k aggregates.
        filter_kinds: layer kinds whose output is a filtered subset of their input (for the
            verifier false-positive rate); default: the kinds the registry declares as
            filters (``Layer.is_filter``).
        trace: receives a record of every model call.
        seed: run seed (sampling seeds derive from it).
    """

    client: ModelClient
    limits: Limits | None = None
    cache: CallCache | None = None
    metric: str | Metric | None = None
    concurrency: int = 8
    budget: Meter | Budget | None = None
    records_path: str | Path | None = None
    resume: bool = False
    registry: Registry | None = None
    metrics: MetricRegistry | None = None
    metric_options: MetricOptions | None = None
    judge_client: ModelClient | None = None
    runner: CodeRunner = sandbox_runner
    score_candidates: bool | None = None
    pass_k: Sequence[int] = PASS_K
    filter_kinds: Sequence[str] | None = None
    trace: TraceSink | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("EvalConfig.concurrency must be at least 1")

    def replace(self, **changes: Any) -> EvalConfig:
        """A copy with ``changes`` applied (unknown names raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)
