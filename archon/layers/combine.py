"""``combine``: one score from several weak verifiers' signals (in the spirit of Weaver).

Each candidate carries named evidence (``Candidate.signals``) from earlier layers: tests
passed, execution agreement, vote share, likelihood, judges' verdicts. ``combine`` scores
``sigmoid(bias + Σ wᵢ·xᵢ)`` over chosen features and orders the candidates by it. The
weights are parameters, so a search can choose them and ``--params`` replays them;
:func:`fit_weights` learns them from labelled dev candidates (L2-regularised logistic
regression by Newton's method).

Features: ``xᵢ`` is the signal's value; signals named ``logprob`` or ``logprob:*`` enter
as ``exp(logprob)`` (the geometric mean token probability, in ``[0, 1]`` like the others);
a ``logprob`` signal that no layer recorded falls back to the candidate's sampling
``logprob``. A missing signal counts as 0 ("no evidence"): when it is missing for every
candidate of a query the term is the same for all and does not change their order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, TypeAlias

from pydantic import Field, model_validator

from archon.errors import ArchonError
from archon.layers._calls import candidates_of, reorder_estimate, top
from archon.layers.base import (
    Flow,
    Layer,
    LayerContext,
    LayerEstimate,
    LayerParams,
)
from archon.layers.common import TopK
from archon.values import Candidate, Candidates, Payload

if TYPE_CHECKING:  # numpy is needed only to fit weights, not to check or run a pipeline
    import numpy as np
    import numpy.typing as npt

    Array: TypeAlias = npt.NDArray[np.float64]

FEATURES = ("tests_passed", "exec_agreement", "vote_share", "logprob", "judge")
"""The signals the built-in layers record, in the default feature order."""


class CombineParams(LayerParams):
    """``weights[i]`` multiplies feature ``features[i]``; ``None`` weighs each by 1."""

    features: tuple[str, ...] = Field(FEATURES, min_length=1, max_length=64)
    weights: tuple[float, ...] | None = None
    bias: float = 0.0
    top_k: TopK = None

    @model_validator(mode="after")
    def _aligned(self) -> CombineParams:
        if len(set(self.features)) != len(self.features) or not all(self.features):
            raise ValueError("features must be distinct, non-empty signal names")
        if self.weights is not None and len(self.weights) != len(self.features):
            raise ValueError(
                f"weights has {len(self.weights)} values for {len(self.features)} features;"
                " give one weight per feature, in the same order"
            )
        if not all(math.isfinite(w) for w in (*(self.weights or ()), self.bias)):
            raise ValueError("weights and bias must be finite numbers")
        return self

    def resolved(self) -> Weights:
        """These parameters as :class:`Weights`."""
        weights = self.weights if self.weights is not None else (1.0,) * len(self.features)
        return Weights(self.features, tuple(weights), self.bias)


@dataclass(frozen=True)
class Weights:
    """A linear scorer over named features, as ``combine`` applies it."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float

    def score(self, signals: Mapping[str, float]) -> float:
        """``sigmoid(bias + Σ wᵢ·xᵢ)`` for one candidate's signals."""
        z = self.bias + sum(w * x for w, x in zip(self.weights, self.vector(signals), strict=True))
        return _sigmoid(z)

    def vector(self, signals: Mapping[str, float]) -> list[float]:
        """The feature values of one candidate, in ``features`` order."""
        return [feature_value(name, signals) for name in self.features]

    def params(self) -> dict[str, object]:
        """``combine`` parameters that replay these weights (e.g. in a ``--params`` file)."""
        return {"features": list(self.features), "weights": list(self.weights), "bias": self.bias}


class Combine(Layer[CombineParams]):
    """Score candidates by a weighted combination of their signals; best first.

    Writes ``Candidate.score`` (in ``(0, 1)``) and keeps the best ``top_k`` (default all).
    """

    kind: ClassVar[str] = "combine"
    Params = CombineParams
    consumes = (Candidates,)
    produces = Candidates

    @classmethod
    def estimate(
        cls, params: CombineParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        return reorder_estimate(inputs, params.top_k)

    async def run(
        self, ctx: LayerContext, params: CombineParams, inputs: Sequence[Payload]
    ) -> Payload:
        candidates = candidates_of(inputs)
        if not candidates:
            return Candidates()
        weights = params.resolved()
        rows = [features_of(c) for c in candidates]
        if not any(name in row for row in rows for name in weights.features):
            ctx.warn(
                f"no candidate carries any of the signals {', '.join(weights.features)};"
                " every score is the bias alone, so the input order is kept"
            )
        scored = [
            c.model_copy(update={"score": weights.score(row)})
            for c, row in zip(candidates, rows, strict=True)
        ]
        order = sorted(range(len(scored)), key=lambda k: -(scored[k].score or 0.0))
        ranked = [scored[k] for k in order]
        return Candidates(items=top(ranked, params.top_k))


def features_of(candidate: Candidate) -> dict[str, float]:
    """A candidate's signals by name, with its sampling ``logprob`` when no layer scored it.

    This is the row :func:`fit_weights` expects for one dev candidate.
    """
    row = dict(candidate.signals)
    if "logprob" not in row and candidate.logprob is not None:
        row["logprob"] = candidate.logprob
    return row


def feature_value(name: str, signals: Mapping[str, float]) -> float:
    """Feature ``name`` from a signal row: 0 when missing, ``exp`` for log-probabilities."""
    value = signals.get(name)
    if value is None or not math.isfinite(value):
        return 0.0
    if name == "logprob" or name.startswith("logprob:"):
        return math.exp(min(0.0, value))
    return float(value)


def _sigmoid(z: float) -> float:
    # The two branches avoid overflow in exp for large |z|.
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


# ---------------------------------------------------------------------- fitting


class FitError(ArchonError):
    """Weights cannot be fitted from the rows given."""


def fit_weights(
    rows: Sequence[tuple[Mapping[str, float], bool]],
    *,
    features: Sequence[str] | None = None,
    l2: float = 1.0,
    max_iterations: int = 100,
) -> Weights:
    """Learn ``combine`` weights from labelled candidates (logistic regression).

    Args:
        rows: one ``(signals, correct)`` pair per dev candidate, signals as
            :func:`features_of` gives them.
        features: the feature names (default: every signal seen, built-in names first).
        l2: the penalty ``l2/2·|w|²`` on the weights (not the bias) that keeps them finite
            when a signal separates the labels perfectly and shrinks noise towards 0.
        max_iterations: Newton steps at most (it usually converges in under ten).

    Returns:
        The weights minimising the penalised log-loss; ``Weights.params()`` gives the
        ``combine`` parameters that replay them.
    """
    if not rows:
        raise FitError("fit_weights needs at least one labelled candidate")
    if l2 < 0 or not math.isfinite(l2):
        raise FitError(f"l2 must be a non-negative number, got {l2}")
    names = tuple(features) if features is not None else _feature_names(rows)
    if not names:
        raise FitError("no features to fit: the rows carry no signal; pass features=")
    import numpy as np

    x = np.array([[1.0, *(feature_value(n, signals) for n in names)] for signals, _ in rows])
    y = np.array([1.0 if correct else 0.0 for _, correct in rows])
    theta = _newton(x, y, l2, max_iterations)
    return Weights(names, tuple(float(w) for w in theta[1:]), float(theta[0]))


def _feature_names(rows: Sequence[tuple[Mapping[str, float], bool]]) -> tuple[str, ...]:
    seen = {name for signals, _ in rows for name in signals}
    return tuple(n for n in FEATURES if n in seen) + tuple(sorted(seen - set(FEATURES)))


def _newton(x: Array, y: Array, l2: float, max_iterations: int) -> Array:
    """Minimise the penalised log-loss by Newton steps, halved while they do not improve it.

    A tiny penalty keeps the bias finite too (labels all equal would push it to infinity).
    """
    import numpy as np

    penalty = np.full(x.shape[1], l2)
    penalty[0] = 1e-6
    theta = np.zeros(x.shape[1])
    loss = _loss(x, y, penalty, theta)
    for _ in range(max_iterations):
        p = _probabilities(x, theta)
        gradient = x.T @ (p - y) + penalty * theta
        hessian = (x.T * (p * (1.0 - p))) @ x + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        for _ in range(30):  # backtracking keeps every step a descent step
            candidate = theta - step
            new_loss = _loss(x, y, penalty, candidate)
            if new_loss <= loss:
                break
            step = step / 2.0
        else:
            break
        theta, converged, loss = candidate, float(np.max(np.abs(step))) < 1e-10, new_loss
        if converged:
            break
    return theta


def _probabilities(x: Array, theta: Array) -> Array:
    import numpy as np

    result: Array = 1.0 / (1.0 + np.exp(-np.clip(x @ theta, -500.0, 500.0)))
    return result


def _loss(x: Array, y: Array, penalty: Array, theta: Array) -> float:
    import numpy as np

    z = x @ theta
    # log(1 + e^z) - y z, computed stably
    total = np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * theta * theta)
    return float(total)
