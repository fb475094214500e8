"""Holes as Optuna distributions; define-by-run sampling; FixedTrial replay equals assign."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FixedTrial

from archon.compiler.structure import assign, default_assignment
from archon.ir import Pipeline, strip_spans
from archon.layers.registry import Registry
from archon.search.space import (
    SearchSpaceError,
    check_grid,
    decode_params,
    encode_params,
    materialize,
    params_json,
    replay,
    search_space,
)

from .helpers import compile_text

optuna.logging.set_verbosity(optuna.logging.WARNING)


def same(a: Pipeline, b: Pipeline) -> bool:
    return strip_spans(a) == strip_spans(b)


def test_every_hole_becomes_a_named_distribution(full: Pipeline) -> None:
    space = search_space(full)
    assert list(space) == [
        "gen.models",
        "gen.samples",
        "gen.temperature",
        "critique_1.enabled",
        "critique_1.model",
        "rank_1.top_k",
        "repeat_1.count",
        "fuse_1.1.temperature",
        "fuse_1.2.temperature",
    ]
    assert space["gen.models"] == CategoricalDistribution(('["sim/a"]', '["sim/a", "sim/b"]'))
    assert space["gen.samples"] == IntDistribution(1, 4)
    assert space["gen.temperature"] == FloatDistribution(0.0, 1.0)
    assert space["critique_1.enabled"] == CategoricalDistribution((True, False))
    assert space["critique_1.model"] == CategoricalDistribution(("sim/a", "sim/b"))
    assert space["repeat_1.count"] == IntDistribution(0, 2)
    assert space["fuse_1.2.temperature"] == FloatDistribution(0.0, 0.6, step=0.2)


def test_log_range(registry: Registry) -> None:
    template = compile_text(
        'pipeline p { generate(models = ["m"], max_tokens = int(16, 1024, log = true)) }',
        registry,
    )
    assert search_space(template)["generate_1.max_tokens"] == IntDistribution(16, 1024, log=True)


@pytest.mark.parametrize("seed", range(12))
def test_sampled_configuration_replays_with_fixed_trial_and_assign(
    full: Pipeline, registry: Registry, seed: int
) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    trial = study.ask()
    concrete = materialize(full, trial, registry)
    params = decode_params(full, trial.params)
    # FixedTrial replay of the stored (encoded) params: the same pipeline
    assert same(materialize(full, FixedTrial(dict(trial.params)), registry), concrete)
    # replay of decoded params, and the deployment path (structure.assign)
    assert same(replay(full, params, registry), concrete)
    assigned, _ = assign(full, params, registry)
    assert same(assigned, concrete)
    # through JSON (best.json) and back
    from_json = json.loads(json.dumps(params_json(params)))
    assert same(assign(full, from_json, registry)[0], concrete)


def test_repeat_copies_are_suggested_only_when_active(full: Pipeline, registry: Registry) -> None:
    base = encode_params(full, default_assignment(full))
    for count, expected in (
        (0, set()),
        (1, {"fuse_1.1.temperature"}),
        (2, {"fuse_1.1.temperature", "fuse_1.2.temperature"}),
    ):
        trial = FixedTrial({**base, "repeat_1.count": count})
        concrete = materialize(full, trial, registry)
        fuse_params = {name for name in trial.params if name.startswith("fuse_1.")}
        assert fuse_params == expected
        assert sum(node.kind == "fuse" for node in concrete.nodes) == count


def test_optional_layer_hides_its_parameters(full: Pipeline, registry: Registry) -> None:
    base = encode_params(full, default_assignment(full))
    off = FixedTrial({**base, "critique_1.enabled": False})
    concrete = materialize(full, off, registry)
    assert "critique_1.model" not in off.params
    assert all(node.kind != "critique" for node in concrete.nodes)
    on = FixedTrial({**base, "critique_1.enabled": True})
    materialize(full, on, registry)
    assert "critique_1.model" in on.params


def test_conditional_params_with_a_real_sampler(full: Pipeline, registry: Registry) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen_counts = set()
    for _ in range(40):
        trial = study.ask()
        materialize(full, trial, registry)
        count = trial.params["repeat_1.count"]
        seen_counts.add(count)
        copies = {n for n in trial.params if n.startswith("fuse_1.")}
        assert copies == {f"fuse_1.{k}.temperature" for k in range(1, count + 1)}
        study.tell(trial, 0.0)
    assert seen_counts == {0, 1, 2}


def test_list_valued_choice_round_trip(full: Pipeline, registry: Registry) -> None:
    stored = encode_params(full, {"gen.models": ("sim/a", "sim/b")})
    assert stored == {"gen.models": '["sim/a", "sim/b"]'}
    assert decode_params(full, stored) == {"gen.models": ("sim/a", "sim/b")}
    # a list read from best.json encodes the same way
    assert encode_params(full, {"gen.models": ["sim/a", "sim/b"]}) == stored  # type: ignore[dict-item]
    trial = FixedTrial({**encode_params(full, default_assignment(full)), **stored})
    concrete = materialize(full, trial, registry)
    assert concrete.node("gen").param("models").value == ("sim/a", "sim/b")  # type: ignore[union-attr]


def test_grid_needs_finite_holes(full: Pipeline, discrete: Pipeline) -> None:
    with pytest.raises(SearchSpaceError, match=r"'gen.temperature' is a continuous range.*step"):
        check_grid(full)
    assert check_grid(discrete) == 2 * 3 * 2 * 2


def test_log_and_step_together_are_refused(registry: Registry) -> None:
    from archon.compiler.structure import holes
    from archon.ir import IntRange
    from archon.search.space import distribution

    ref = holes(
        compile_text('pipeline p { generate(models = ["m"], samples = int(1, 8)) }', registry)
    )[0]
    bad = type(ref)(ref.name, IntRange(low=1, high=8, step=2, log=True), "param")
    with pytest.raises(SearchSpaceError, match="log-scaled and stepped"):
        distribution(bad)
