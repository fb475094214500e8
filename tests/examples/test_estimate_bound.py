"""The static cost estimate is an upper bound of the calls a run really makes.

For every example (its defaults and a few seeded random assignments of its holes) and every
imported Archon config, the calls the ScriptedClient receives never exceed
``archon.compiler.cost.estimate``, with well-formed and with garbage model replies (parsers
that fall back must not call more than estimated either).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from archon.compiler import compile_file, compile_source
from archon.compiler.cost import estimate
from archon.compiler.structure import assign, random_chooser, resolve
from archon.interop.archon_config import ArchonConfigError, import_config
from archon.ir import Pipeline
from archon.layers import default_registry
from archon.runtime import Limits, run_sync
from archon.runtime.clients.fake import Rule, ScriptedClient
from archon.testing.layer_contract import GARBAGE

ROOT = Path(__file__).parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.pipe"))
ARCHON_CONFIGS = sorted((ROOT / "tests" / "interop" / "archon_configs").glob("*.json"))
QUERY = "Write a Python function add(a, b) that returns the sum; what is add(1, 2)?"
RANDOM_ASSIGNMENTS = 3

WELL_FORMED: tuple[Rule, ...] = (
    (r"Ranking:", "Ranking: [2] > [1] > [3]"),
    (r"Verdict: Yes", "The answer checks out.\nVerdict: Yes"),
    (r"Score: N", "Score: 8"),
    (r"unit tests", "```python\nassert add(1, 2) == 3\nassert add(0, 0) == 0\n```"),
    (r"Strengths", "Strengths: clear.\nWeaknesses: terse."),
    (None, "def add(a, b):\n    return a + b\n\nAnswer: {seed}"),
)
SCRIPTS = {"well_formed": WELL_FORMED, "garbage": ((None, GARBAGE),)}


def _component(kind: str, model: str, **options: Any) -> dict[str, Any]:
    return {"type": kind, "model": model, "model_type": "OpenAI_API", **options}


# Archon's configs list one model several times to sample it more (the issue 10 case).
HAND_WRITTEN: dict[str, dict[str, Any]] = {
    "repeated_model_then_critic": {
        "name": "repeated",
        "layers": [
            [_component("generator", "m", samples=2, temperature=0.7) for _ in range(3)],
            [_component("critic", "m", samples=1)],
            [_component("fuser", "m", samples=1)],
        ],
    },
    "mixed_layer": {
        "name": "mixed",
        "layers": [
            [_component("generator", "a", samples=2), _component("generator", "b")],
            [_component("generator", "a"), _component("fuser", "f"), _component("fuser", "f")],
            [_component("ranker", "r", top_k=2)],
            [_component("fuser", "f")],
        ],
    },
}


# Ensembles that list a model several times, in every kind that takes ``models``.
REPEATED_MODELS = """
pipeline repeated {
  g = generate(models = ["m", "m", "n", "m"], samples = int(1, 3), temperature = 0.7)
  a = adaptive_generate(models = ["m", "m"], samples = 4, batch = 2)
  c = critique(model = "m") <- g, a
  f = fuse(models = ["m", "m", "n"], samples = 2) <- c
  fuse(models = ["n"]) <- f
}
"""


def _example_cases() -> list[Any]:
    registry = default_registry()
    cases = []
    for path in EXAMPLES:
        template = compile_file(path, registry)
        concrete, _ = assign(template, None, registry)
        seen = {concrete.fingerprint()}
        cases.append(pytest.param(concrete, id=f"{path.stem}-defaults"))
        for seed in range(RANDOM_ASSIGNMENTS):
            pipeline = resolve(template, random_chooser(seed), registry)
            if pipeline.fingerprint() not in seen:
                seen.add(pipeline.fingerprint())
                cases.append(pytest.param(pipeline, id=f"{path.stem}-random{seed}"))
    template = compile_source(REPEATED_MODELS, "repeated.pipe", registry)
    for seed in range(RANDOM_ASSIGNMENTS):
        pipeline = resolve(template, random_chooser(seed), registry)
        cases.append(pytest.param(pipeline, id=f"repeated-models-random{seed}"))
    return cases


def _imported(config: Any, name: str) -> Pipeline | None:
    try:
        text = import_config(config, name).text
    except ArchonConfigError:
        return None  # a config Archon cannot run either: covered by the interop tests
    return compile_source(text, f"{name}.pipe")


def _config_cases() -> list[Any]:
    cases = []
    for path in ARCHON_CONFIGS:
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            continue
        pipeline = _imported(config, path.name)
        if pipeline is not None:
            cases.append(pytest.param(pipeline, id=path.stem[:60]))
    for name, config in HAND_WRITTEN.items():
        pipeline = _imported(config, name)
        assert pipeline is not None, name
        cases.append(pytest.param(pipeline, id=name))
    return cases


def _assert_within_estimate(pipeline: Pipeline, rules: tuple[Rule, ...]) -> None:
    registry = default_registry()
    bound = estimate(pipeline, registry)
    client = ScriptedClient(list(rules))
    result = run_sync(
        pipeline,
        QUERY,
        client=client,
        registry=registry,
        limits=Limits(retries=0, timeout_s=30.0, local_concurrency=16),
    )
    assert result.usage.calls == client.calls
    assert client.calls <= bound.calls, f"{client.calls} calls > estimate {bound.calls}"
    per_model = Counter(request.model for request in client.requests)
    aliases = {spec.alias: spec.model for spec in pipeline.models}
    estimated = Counter({aliases.get(m.model, m.model): 0 for m in bound.per_model})
    for cost in bound.per_model:
        estimated[aliases.get(cost.model, cost.model)] += cost.calls
    for model, calls in per_model.items():
        assert calls <= estimated[model], f"{model}: {calls} calls > {estimated[model]}"


def test_there_are_cases() -> None:
    assert len(EXAMPLES) >= 5 and len(ARCHON_CONFIGS) >= 50


@pytest.mark.parametrize("script", sorted(SCRIPTS))
@pytest.mark.parametrize("pipeline", _example_cases())
def test_examples_stay_within_the_estimate(pipeline: Pipeline, script: str) -> None:
    _assert_within_estimate(pipeline, SCRIPTS[script])


@pytest.mark.parametrize("script", sorted(SCRIPTS))
@pytest.mark.parametrize("pipeline", _config_cases())
def test_archon_configs_stay_within_the_estimate(pipeline: Pipeline, script: str) -> None:
    _assert_within_estimate(pipeline, SCRIPTS[script])


def test_a_repeated_model_is_sampled_once_per_listing() -> None:
    """``models = [m, m, m], samples = 2`` is six distinct samples of m, critiqued once each."""
    text = """
    pipeline p {
      generate(models = ["m", "m", "m"], samples = 2, temperature = 0.7)
      critique(model = "m")
    }
    """
    registry = default_registry()
    pipeline = compile_source(text)
    client = ScriptedClient([(r"Strengths", "Strengths: ok\nWeaknesses: none"), (None, "{seed}")])
    result = run_sync(pipeline, "q", client=client, registry=registry, limits=Limits(retries=0))
    assert client.calls == estimate(pipeline, registry).calls == 12
    items = result.output.items  # type: ignore[attr-defined]
    assert [c.sample_index for c in items] == [0, 1, 2, 3, 4, 5]
    assert len({c.text for c in items}) == 6  # distinct seeds, not three copies of two
