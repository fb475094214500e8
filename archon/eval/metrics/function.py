"""A plain scoring function as a metric: ``score(item, answer) -> float`` (sync or async).

Search (``RuntimeEvaluator``) and scripts score with such functions; wrapped here they become
ordinary :class:`~archon.eval.metrics.Metric` objects, registered in a
:class:`~archon.eval.metrics.MetricRegistry` like any other, so every evaluation -- a search
trial included -- goes through :func:`archon.eval.evaluate_chunks` and its typed reports.

Example::

    registry = default_metrics().copy()
    register_function(registry, "ends_with_4", lambda item, answer: float(answer.endswith("4")))
    config = EvalConfig.of(client=client, metric="ends_with_4", metrics=registry)
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from archon.eval.items import EvalItem
from archon.eval.metrics.base import MetricContext, MetricOptions, Score

if TYPE_CHECKING:
    from archon.eval.metrics import MetricRegistry

ScoreFunction = Callable[[Any, str], float | Awaitable[float]]
"""``score(item, answer)``: the final answer's score in [0, 1] (sync or async)."""


class FunctionMetric:
    """A :class:`~archon.eval.metrics.Metric` that scores the final answer with a function.

    Args:
        fn: ``fn(item, answer) -> float`` (or an awaitable of it).
        name: the metric's name (stored in records; resumable evaluations check it).
        item_of: what ``fn`` receives for an :class:`EvalItem` (default: the item itself;
            a search over foreign items passes its own objects back).
    """

    needs_model = False

    def __init__(
        self,
        fn: ScoreFunction,
        name: str = "function",
        item_of: Callable[[EvalItem], Any] | None = None,
    ) -> None:
        self.fn = fn
        self._name = name
        self.item_of = item_of

    @property
    def name(self) -> str:
        return self._name

    async def score(self, item: EvalItem, answers: Sequence[str], ctx: MetricContext) -> Score:
        subject = self.item_of(item) if self.item_of is not None else item
        value = self.fn(subject, answers[-1] if answers else "")
        if inspect.isawaitable(value):
            value = await value
        return Score(value=float(value))


def register_function(
    registry: MetricRegistry, name: str, fn: ScoreFunction, description: str = ""
) -> FunctionMetric:
    """Register ``fn`` in ``registry`` (a :class:`~archon.eval.metrics.MetricRegistry`) under
    ``name``, and return the metric it builds."""
    metric = FunctionMetric(fn, name)

    def factory(_options: MetricOptions) -> FunctionMetric:
        return metric

    registry.register(name, factory, description or (inspect.getdoc(fn) or name).splitlines()[0])
    return metric
