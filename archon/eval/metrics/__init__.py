"""Metrics: a registry of named factories, and the built-in metrics.

A dataset names its default metric; ``evaluate(..., metric="math")`` or ``archon eval
--metric`` picks another, both resolved through :func:`default_metrics`: the built-in metrics
plus those of installed plugins (the ``archon.metrics`` entry-point group, discovered once per
process), as a fresh object each time, so nothing global is mutated. Add your own with
:meth:`MetricRegistry.register` and pass the registry as ``EvalConfig.metrics``;
:func:`builtin_metrics` holds the built-in ones only.

Example:
    >>> registry = default_metrics()
    >>> registry.build("exact_match").name
    'exact_match'
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint

from archon.errors import ArchonError, suggest
from archon.eval.metrics.base import (
    CodeReport,
    CodeRunner,
    Metric,
    MetricContext,
    MetricError,
    MetricOptions,
    Score,
)
from archon.eval.metrics.code import CodePassAt1, sandbox_runner
from archon.eval.metrics.judge import JudgePairwise, JudgeSingle
from archon.eval.metrics.match import ExactMatch, FreeFormMatch, MathEquivalence, MultipleChoice
from archon.eval.metrics.sampling import mean_pass_at_k, pass_at_k
from archon.eval.plugins import METRICS_GROUP, load_group

__all__ = [
    "CodePassAt1",
    "CodeReport",
    "CodeRunner",
    "ExactMatch",
    "FreeFormMatch",
    "JudgePairwise",
    "JudgeSingle",
    "MathEquivalence",
    "Metric",
    "MetricContext",
    "MetricError",
    "MetricFactory",
    "MetricInfo",
    "MetricOptions",
    "MetricRegistry",
    "MultipleChoice",
    "Score",
    "UnknownMetric",
    "builtin_metrics",
    "default_metrics",
    "load_metric_plugins",
    "mean_pass_at_k",
    "pass_at_k",
    "sandbox_runner",
]

MetricFactory = Callable[[MetricOptions], Metric]
"""``factory(options) -> Metric``: builds a configured metric."""


class UnknownMetric(ArchonError):
    """No metric of that name is registered."""


@dataclass(frozen=True)
class MetricInfo:
    """A registered metric: its factory and a one-line description."""

    name: str
    factory: MetricFactory
    description: str


class MetricRegistry:
    """Named metric factories. Fill it at startup; read it afterwards."""

    def __init__(self, metrics: Iterable[MetricInfo] = ()) -> None:
        self._metrics: dict[str, MetricInfo] = {}
        for info in metrics:
            self.add(info)

    def register(self, name: str, factory: MetricFactory, description: str) -> None:
        """Add a metric; a name can be registered once."""
        self.add(MetricInfo(name, factory, description))

    def add(self, info: MetricInfo) -> MetricInfo:
        """Add a registered-metric record (the same record twice is a no-op)."""
        known = self._metrics.get(info.name)
        if known is not None and known != info:
            raise ArchonError(f"metric {info.name!r} is already registered")
        self._metrics[info.name] = info
        return info

    def info(self, name: str) -> MetricInfo:
        """The record of ``name``; raises :class:`UnknownMetric` with a did-you-mean hint."""
        info = self._metrics.get(name)
        if info is None:
            hint = suggest(name, self._metrics)
            known = ", ".join(sorted(self._metrics))
            raise UnknownMetric(
                f"unknown metric {name!r}" + (f"; {hint}" if hint else "") + f" (known: {known})"
            )
        return info

    def build(self, name: str, options: MetricOptions | None = None) -> Metric:
        """A metric instance configured with ``options``."""
        return self.info(name).factory(options or MetricOptions())

    def names(self) -> tuple[str, ...]:
        """The registered names, sorted."""
        return tuple(sorted(self._metrics))

    def copy(self) -> MetricRegistry:
        """A new registry with the same metrics (to extend without touching this one)."""
        return MetricRegistry(self._metrics.values())

    def __contains__(self, name: object) -> bool:
        return name in self._metrics

    def __iter__(self) -> Iterator[MetricInfo]:
        return iter(sorted(self._metrics.values(), key=lambda m: m.name))


def load_metric_plugins(
    registry: MetricRegistry, group: str = METRICS_GROUP, *, strict: bool = False
) -> list[str]:
    """Register the metrics of an entry-point group's plugins; returns the names added.

    Each entry point (``name = "package.module:OBJECT"`` in a package's
    ``[project.entry-points."archon.metrics"]``) names either a :class:`MetricInfo` (its own
    name is used) or a factory ``factory(options: MetricOptions) -> Metric`` registered under
    the entry point's name, described by the first line of its docstring. One that cannot be
    imported, is neither, or clashes with a registered name is skipped with a warning naming
    it; ``strict=True`` raises :class:`~archon.eval.plugins.PluginError` instead.
    """

    def add(entry_point: EntryPoint, loaded: object) -> str:
        if isinstance(loaded, MetricInfo):
            return registry.add(loaded).name
        if not callable(loaded):
            raise MetricError(
                f"'{entry_point.value}' in group '{group}' is neither a MetricInfo nor a"
                f" metric factory (got {type(loaded).__name__})"
            )
        doc = inspect.getdoc(loaded) or entry_point.name
        info = MetricInfo(entry_point.name, loaded, doc.strip().splitlines()[0])
        return registry.add(info).name

    return load_group(group, "metric", add, strict=strict)


def builtin_metrics() -> MetricRegistry:
    """A new registry holding the built-in metrics only (no plugins)."""
    registry = MetricRegistry()
    registry.register(
        "exact_match",
        lambda o: ExactMatch(),
        "final answer equals a target after normalisation (numbers compared as numbers)",
    )
    registry.register(
        "freeform",
        lambda o: FreeFormMatch(parser_model=o.parser_model),
        "answer equals or contains an accepted target (MixEval free-form; optional LLM parser)",
    )
    registry.register(
        "multiple_choice",
        lambda o: MultipleChoice(parser_model=o.parser_model),
        "the option picked (by letter or text) is correct (optional LLM parser)",
    )
    registry.register(
        "math", lambda o: MathEquivalence(), "final answer mathematically equal (math-verify)"
    )
    registry.register(
        "code",
        lambda o: CodePassAt1(timeout_s=o.timeout_s, memory_mb=o.memory_mb),
        "pass@1: the answer's program passes all tests in the sandbox",
    )
    registry.register(
        "judge_single",
        lambda o: JudgeSingle(judge_model=o.judge_model, max_tokens=o.judge_max_tokens),
        "LLM judge rates each turn 1-10 (MT-Bench)",
    )
    registry.register(
        "judge_pairwise",
        lambda o: JudgePairwise(judge_model=o.judge_model, max_tokens=o.judge_max_tokens),
        "LLM judge vs the reference answer, both orders (Arena-Hard, AlpacaEval)",
    )
    return registry


@cache
def _installed() -> MetricRegistry:
    registry = builtin_metrics()
    load_metric_plugins(registry)
    return registry


def default_metrics() -> MetricRegistry:
    """A new registry: the built-in metrics plus installed plugins' (discovered once).

    What ``archon eval --metric``, ``archon search --metric`` and :func:`~archon.eval.evaluate`
    resolve names with when given no registry. A fresh object each time: extending it changes
    nothing global.
    """
    return _installed().copy()
