"""Evaluation: datasets, metrics, and running a pipeline over a dataset.

Example (offline, with a scripted model)::

    from archon.eval import evaluate_sync, load_dataset
    from archon.runtime.clients.fake import ScriptedClient

    dataset = load_dataset("bigbench/arithmetic").head(10)
    result = evaluate_sync(pipeline, dataset, EvalConfig.of(client=ScriptedClient()))
    print(result.summary.accuracy, result.summary.cost.calls_per_item)

See ``docs/eval.md`` for the datasets, the metrics and the CLI.
"""

from __future__ import annotations

from archon.eval.config import EvalConfig
from archon.eval.datasets import (
    FORMATS,
    NAMED,
    DatasetFamily,
    DatasetRegistry,
    Format,
    LoadRequest,
    NamedDataset,
    default_datasets,
    detect_format,
    load_dataset,
)
from archon.eval.evaluate import (
    ChunkReport,
    EvalResult,
    Update,
    evaluate,
    evaluate_chunks,
    evaluate_iter,
    evaluate_sync,
)
from archon.eval.items import Dataset, DatasetError, EvalItem
from archon.eval.metrics import (
    CodeReport,
    Metric,
    MetricContext,
    MetricError,
    MetricInfo,
    MetricOptions,
    MetricRegistry,
    Score,
    UnknownMetric,
    builtin_metrics,
    default_metrics,
    pass_at_k,
)
from archon.eval.records import (
    CandidateRecord,
    ItemRecord,
    ModelUsage,
    RecordsError,
    read_records,
)
from archon.eval.splits import SPLITS, Split, select_split, split_of
from archon.eval.summary import Cost, Summary, declared_filters, summarize

__all__ = [
    "FORMATS",
    "NAMED",
    "SPLITS",
    "CandidateRecord",
    "ChunkReport",
    "CodeReport",
    "Cost",
    "Dataset",
    "DatasetError",
    "DatasetFamily",
    "DatasetRegistry",
    "EvalConfig",
    "EvalItem",
    "EvalResult",
    "Format",
    "ItemRecord",
    "LoadRequest",
    "Metric",
    "MetricContext",
    "MetricError",
    "MetricInfo",
    "MetricOptions",
    "MetricRegistry",
    "ModelUsage",
    "NamedDataset",
    "RecordsError",
    "Score",
    "Split",
    "Summary",
    "UnknownMetric",
    "Update",
    "builtin_metrics",
    "declared_filters",
    "default_datasets",
    "default_metrics",
    "detect_format",
    "evaluate",
    "evaluate_chunks",
    "evaluate_iter",
    "evaluate_sync",
    "load_dataset",
    "pass_at_k",
    "read_records",
    "select_split",
    "split_of",
    "summarize",
]
