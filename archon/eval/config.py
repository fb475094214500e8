"""How an evaluation runs: one frozen :class:`EvalConfig` taken by every evaluation entry point
(:func:`~archon.eval.evaluate`, :func:`~archon.eval.evaluate_iter`,
:func:`~archon.eval.evaluate_chunks`), by search's evaluator and by the CLI.

The same options used to travel as twenty keywords through three signatures; one value keeps
their types and their defaults in one place. Derive a variant with :meth:`EvalConfig.replace`
(search does, to give each trial its own budget meter and trace sink).

The run environment (client, limits, layer registry, call cache, trace sink, redactor, seed)
is one :class:`~archon.runtime.RunEnv`, held whole in ``env`` and handed to the runtime as it
is.

Example::

    config = EvalConfig(env=RunEnv(client=client, limits=Limits()), concurrency=4)
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
from archon.runtime import Meter, ModelClient, RunEnv


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """Everything an evaluation needs besides the pipeline and the dataset.

    Attributes:
        env: the run environment: the client the pipeline's model calls go to (also the
            judge's unless ``judge_client`` is given), the shared limits, the layer registry,
            the call cache (pipeline and judge calls), the trace sink (every model call), the
            redactor and the run seed (sampling seeds derive from it).
        metric: a metric name or instance (default: the dataset's metric).
        concurrency: items in flight at once.
        budget: a run-level budget (or a shared meter) over all items; exhausting it stops
            the evaluation cleanly.
        records_path: JSONL file receiving one record per item as it finishes.
        resume: keep the records already in ``records_path`` and skip their items.
        metrics / metric_options: how a metric name is built.
        judge_client: client for the metric's own model calls (default: ``client``).
        runner: code execution for the ``code`` metric (default: the sandbox).
        score_candidates: score every candidate for pass@k and coverage (default: when the
            metric calls no model).
        pass_k: the k of the pass@k aggregates.
        filter_kinds: layer kinds whose output is a filtered subset of their input (for the
            verifier false-positive rate); default: the kinds the registry declares as
            filters (``Layer.is_filter``).
    """

    env: RunEnv
    metric: str | Metric | None = None
    concurrency: int = 8
    budget: Meter | Budget | None = None
    records_path: str | Path | None = None
    resume: bool = False
    metrics: MetricRegistry | None = None
    metric_options: MetricOptions | None = None
    judge_client: ModelClient | None = None
    runner: CodeRunner = sandbox_runner
    score_candidates: bool | None = None
    pass_k: Sequence[int] = PASS_K
    filter_kinds: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("EvalConfig.concurrency must be at least 1")

    def replace(self, **changes: Any) -> EvalConfig:
        """A copy with ``changes`` applied (unknown names raise ``TypeError``); names of
        :class:`~archon.runtime.RunEnv` fields (``trace``, ``seed`` ...) change ``env``."""
        own, env = split_fields(changes)
        if env:
            own["env"] = own.get("env", self.env).replace(**env)
        return dataclasses.replace(self, **own)

    @classmethod
    def of(cls, **fields: Any) -> EvalConfig:
        """A config from keywords, those of :class:`~archon.runtime.RunEnv` (``client``,
        ``limits``, ``cache``, ``registry``, ``trace``, ``redactor``, ``seed``) making its
        ``env``: ``EvalConfig.of(client=c, concurrency=4)``."""
        own, env = split_fields(fields)
        if env:
            if "env" in own:
                raise TypeError("give env or its fields (client=, limits= ...), not both")
            own["env"] = RunEnv(**env)
        return cls(**own)


_ENV_FIELDS = frozenset(f.name for f in dataclasses.fields(RunEnv))


def split_fields(fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``fields`` as (EvalConfig's own, RunEnv's); None values of RunEnv fields are dropped
    (they take the environment's default)."""
    own = {k: v for k, v in fields.items() if k not in _ENV_FIELDS}
    env = {k: v for k, v in fields.items() if k in _ENV_FIELDS and v is not None}
    return own, env
