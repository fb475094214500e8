"""The search space: a template's holes as Optuna distributions, sampled define-by-run.

Each hole of a template (see :func:`archon.compiler.structure.holes`) becomes one Optuna
parameter with a stable name, ``node_id.param`` (``id.enabled`` for an ``optional`` layer,
``id.count`` for a ``repeat`` block):

==================  ==============================================================
hole                Optuna distribution
==================  ==============================================================
``choice(...)``     ``CategoricalDistribution``; options that are lists are stored as
                    their JSON text (``'["small", "tiny"]'``), since Optuna choices must
                    be ``None``/bool/int/float/str, and decoded back to tuples
``int(lo, hi)``     ``IntDistribution(lo, hi, step, log)``
``float(lo, hi)``   ``FloatDistribution(lo, hi, step, log)``
``optional``        ``CategoricalDistribution((True, False))``
``repeat int(..)``  ``IntDistribution``; the copies' holes are asked for only when the
                    count makes them active (conditional parameters)
==================  ==============================================================

:func:`materialize` is :func:`archon.compiler.structure.resolve` with a chooser that calls
``trial.suggest_*``; the same function replays stored parameters through
``optuna.trial.FixedTrial`` (:func:`replay`), so search and deployment share one code path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalChoiceType,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import BaseTrial, FixedTrial

from archon.compiler.structure import Chooser, HoleRef, hole_size, holes, resolve
from archon.errors import ArchonError
from archon.ir import Choice, FloatRange, Hole, IntRange, Pipeline, Value
from archon.layers.registry import Registry


class SearchSpaceError(ArchonError):
    """A template's holes cannot be searched as asked (e.g. a grid over a continuous range)."""


def _needs_json(hole: Choice) -> bool:
    return any(isinstance(option, tuple) for option in hole.options)


def _to_json(value: Value) -> Any:
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    return value


def _from_json(data: Any) -> Value:
    if isinstance(data, list):
        return tuple(_from_json(v) for v in data)
    if isinstance(data, str | bool | int | float):
        return data
    raise SearchSpaceError(f"not a parameter value: {data!r}")


def encode_option(hole: Choice, option: Value) -> CategoricalChoiceType:
    """How ``option`` of ``hole`` is stored in Optuna (JSON text when the hole has lists)."""
    if _needs_json(hole):
        return json.dumps(_to_json(option), separators=(", ", ": "), ensure_ascii=False)
    assert not isinstance(option, tuple)
    return option


def decode_option(hole: Choice, stored: Any) -> Value:
    """The option of ``hole`` that Optuna stored as ``stored``."""
    if _needs_json(hole) and isinstance(stored, str):
        return _from_json(json.loads(stored))
    return _from_json(stored)


def distribution(ref: HoleRef) -> BaseDistribution:
    """The Optuna distribution of one hole."""
    hole = ref.hole
    if isinstance(hole, Choice):
        return CategoricalDistribution(tuple(encode_option(hole, o) for o in hole.options))
    if hole.log and hole.step not in (None, 1):
        raise SearchSpaceError(
            f"'{ref.name}': a range cannot be both log-scaled and stepped in Optuna;"
            " drop `log` or `step`"
        )
    if isinstance(hole, IntRange):
        return IntDistribution(hole.low, hole.high, log=hole.log, step=max(1, hole.step))
    return FloatDistribution(hole.low, hole.high, log=hole.log, step=hole.step)


def search_space(template: Pipeline) -> dict[str, BaseDistribution]:
    """Every parameter the template can ask for, active or not, by name."""
    return {ref.name: distribution(ref) for ref in holes(template)}


def trial_chooser(trial: BaseTrial) -> Chooser:
    """A chooser for :func:`~archon.compiler.structure.resolve` backed by ``trial.suggest_*``."""

    def choose(ref: HoleRef) -> Value:
        hole = ref.hole
        if isinstance(hole, Choice):
            choices = [encode_option(hole, o) for o in hole.options]
            return decode_option(hole, trial.suggest_categorical(ref.name, choices))
        dist = distribution(ref)
        if isinstance(hole, IntRange):
            assert isinstance(dist, IntDistribution)
            return trial.suggest_int(ref.name, dist.low, dist.high, step=dist.step, log=dist.log)
        assert isinstance(dist, FloatDistribution)
        return trial.suggest_float(ref.name, dist.low, dist.high, step=dist.step, log=dist.log)

    return choose


def materialize(template: Pipeline, trial: BaseTrial, registry: Registry) -> Pipeline:
    """The concrete pipeline a trial chooses: only active holes are suggested, in order.

    Works with any trial-like object: an ``optuna.Trial`` during search, an
    ``optuna.trial.FixedTrial`` to replay stored parameters (see :func:`replay`).

    Example:
        >>> concrete = materialize(template, study.ask(), registry)  # doctest: +SKIP
    """
    return resolve(template, trial_chooser(trial), registry)


def encode_params(template: Pipeline, params: Mapping[str, Value]) -> dict[str, Any]:
    """Decoded hole values -> what Optuna stores (for ``enqueue_trial`` and ``FixedTrial``)."""
    refs = {ref.name: ref for ref in holes(template)}
    encoded: dict[str, Any] = {}
    for name, value in params.items():
        ref = refs.get(name)
        if ref is not None and isinstance(ref.hole, Choice):
            encoded[name] = encode_option(ref.hole, _as_value(value))
        else:
            encoded[name] = value
    return encoded


def _as_value(value: Any) -> Value:
    if isinstance(value, list):
        return tuple(_as_value(v) for v in value)
    return value  # type: ignore[no-any-return]


def decode_params(template: Pipeline, stored: Mapping[str, Any]) -> dict[str, Value]:
    """Optuna-stored params -> hole values (lists as tuples), e.g. for ``best.json``."""
    refs = {ref.name: ref for ref in holes(template)}
    decoded: dict[str, Value] = {}
    for name, value in stored.items():
        ref = refs.get(name)
        if ref is not None and isinstance(ref.hole, Choice):
            decoded[name] = decode_option(ref.hole, value)
        else:
            decoded[name] = _from_json(value)
    return decoded


def params_json(params: Mapping[str, Value]) -> dict[str, Any]:
    """Hole values as plain JSON data (tuples become lists)."""
    return {name: _to_json(value) for name, value in params.items()}


def replay(template: Pipeline, params: Mapping[str, Value], registry: Registry) -> Pipeline:
    """Rebuild the concrete pipeline of stored (decoded) params with ``FixedTrial``.

    Every active hole must be given (``FixedTrial`` has no defaults; for defaults use
    :func:`archon.compiler.structure.assign`).
    """
    return materialize(template, FixedTrial(encode_params(template, params)), registry)


def grid_values(ref: HoleRef) -> list[CategoricalChoiceType]:
    """The values a grid visits for one hole; refuses continuous ranges."""
    hole: Hole = ref.hole
    if isinstance(hole, Choice):
        return [encode_option(hole, o) for o in hole.options]
    if isinstance(hole, IntRange):
        return list(hole.values())
    assert isinstance(hole, FloatRange)
    if hole.step is None and hole.low != hole.high:
        raise SearchSpaceError(
            f"'{ref.name}' is a continuous range float({hole.low:g}, {hole.high:g}); a grid"
            f" search needs a step: write float({hole.low:g}, {hole.high:g}, step = ...) or use"
            " another sampler (tpe, random)"
        )
    size = int(hole_size(hole))
    step = hole.step or 0.0
    return [round(hole.low + i * step, 12) for i in range(size)]


def check_grid(template: Pipeline) -> int:
    """Raise :class:`SearchSpaceError` unless every hole is finite; return the grid size."""
    size = 1
    for ref in holes(template):
        size *= len(grid_values(ref))
    return size
