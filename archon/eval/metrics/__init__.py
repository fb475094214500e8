"""Metrics: a registry of named factories, and the built-in metrics.

A dataset names its default metric; ``evaluate(..., metric="math")`` or ``archon eval
--metric`` picks another. Build a registry with :func:`default_metrics` (a fresh object each
time: nothing global is mutated) and add your own with :meth:`MetricRegistry.register`.

Example:
    >>> registry = default_metrics()
    >>> registry.build("exact_match").name
    'exact_match'
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

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
    "MetricOptions",
    "MetricRegistry",
    "MultipleChoice",
    "Score",
    "UnknownMetric",
    "default_metrics",
    "mean_pass_at_k",
    "pass_at_k",
    "sandbox_runner",
]

MetricFactory = Callable[[MetricOptions], Metric]


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

    def __init__(self) -> None:
        self._metrics: dict[str, MetricInfo] = {}

    def register(self, name: str, factory: MetricFactory, description: str) -> None:
        """Add a metric; a name can be registered once."""
        if name in self._metrics:
            raise ArchonError(f"metric {name!r} is already registered")
        self._metrics[name] = MetricInfo(name, factory, description)

    def build(self, name: str, options: MetricOptions | None = None) -> Metric:
        """A metric instance configured with ``options``."""
        info = self._metrics.get(name)
        if info is None:
            hint = suggest(name, self._metrics)
            known = ", ".join(sorted(self._metrics))
            raise UnknownMetric(
                f"unknown metric {name!r}" + (f"; {hint}" if hint else "") + f" (known: {known})"
            )
        return info.factory(options or MetricOptions())

    def __contains__(self, name: object) -> bool:
        return name in self._metrics

    def __iter__(self) -> Iterator[MetricInfo]:
        return iter(sorted(self._metrics.values(), key=lambda m: m.name))


def default_metrics() -> MetricRegistry:
    """A new registry holding the built-in metrics."""
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
