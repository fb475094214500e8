"""Import and export follow Archon's execution model, checked against Archon's own configs.

In Archon every component of a layer reads what the previous layer left, and a layer that
writes candidates replaces them. For the configs Archon can run, import -> export must give
back the same component types in every layer; the ones it cannot run are refused with a
clear error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from archon.compiler import compile_source
from archon.interop.archon_config import ArchonConfigError, export_config, import_config

CONFIGS = sorted((Path(__file__).parent / "archon_configs").glob("*.json"))

# What Archon's components need to start (their __init__) and what they assert at run time.
_NEEDS = ("model", "model_type", "temperature", "max_tokens")
_ALSO_NEEDS = {
    "generator": (),
    "critic": ("samples",),
    "ranker": ("top_k",),
    "fuser": (),
    "verifier": ("samples",),
    "unit_test_generator": ("samples",),
    "unit_test_evaluator": ("samples", "remove_unit_tests_from_prompt"),
}
_PAIR_RM_NEEDS = ("model", "model_type", "top_k", "temperature", "ranker_batch_size")
_MODEL_TYPES = {"Together_API", "OpenAI_API", "Anthropic_API", "Groq_API", "Google_API"}
_MODEL_TYPES |= {"tgi", "Bedrock_API", "vLLM"}
_READERS = {"critic", "ranker", "fuser", "verifier", "unit_test_evaluator"}


def _components(layer: Any) -> Any:
    return layer["models"] if isinstance(layer, Mapping) and "models" in layer else layer


def archon_refuses(config: Any) -> str | None:
    """Why Archon (its ``Archon.__init__`` and ``Layer.process``) cannot run ``config``."""
    if not isinstance(config, Mapping) or not isinstance(config.get("layers"), list):
        return "no list of layers"
    candidates = tests = False
    for number, layer in enumerate(config["layers"], start=1):
        components = _components(layer)
        if not isinstance(components, list):
            return f"layer {number} is not a list of components"
        for component in components:
            kind = component.get("type") if isinstance(component, Mapping) else None
            if kind not in _ALSO_NEEDS:
                return f"layer {number}: unknown component type {kind!r}"
            pair_rm = kind == "ranker" and component.get("model") == "llm-blender/PairRM"
            needs = _PAIR_RM_NEEDS if pair_rm else _NEEDS + _ALSO_NEEDS[kind]
            if any(key not in component for key in needs):
                return f"layer {number}: a {kind} lacks one of {needs}"
            if not pair_rm and component["model_type"] not in _MODEL_TYPES:
                return f"layer {number}: unknown model_type {component['model_type']!r}"
            if (kind in _READERS and not candidates) or (
                kind == "unit_test_evaluator" and not tests
            ):
                return f"layer {number}: a {kind} has nothing to read"
        candidates |= any(c["type"] not in ("critic", "unit_test_generator") for c in components)
        tests |= any(c["type"] == "unit_test_generator" for c in components)
    return None if candidates else "no candidates"


def _types_per_layer(config: Mapping[str, Any]) -> list[list[str]]:
    return [sorted(c["type"] for c in _components(layer)) for layer in config["layers"]]


def _round_trip(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    pipeline = compile_source(import_config(config, name).text, f"{name}.pipe")
    return export_config(pipeline)


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_import_export_keeps_every_layer_of_archons_configs() -> None:
    valid = [path for path in CONFIGS if archon_refuses(_load(path)) is None]
    failures = []
    for path in valid:
        config = _load(path)
        try:
            exported = _round_trip(config, path.name)
        except ArchonConfigError as error:
            failures.append(f"{path.name}: {error}")
            continue
        if _types_per_layer(exported) != _types_per_layer(config):
            failures.append(
                f"{path.name}: {_types_per_layer(config)} -> {_types_per_layer(exported)}"
            )
    assert len(valid) >= 55
    kept = 1 - len(failures) / len(valid)
    assert kept >= 0.95, f"{kept:.1%} kept; failures:\n" + "\n".join(failures)
    assert not failures  # today every valid config round-trips; keep it that way


@pytest.mark.parametrize(
    "path",
    [path for path in CONFIGS if archon_refuses(_load(path)) is not None],
    ids=lambda p: p.stem[:50],
)
def test_configs_archon_cannot_run_are_refused_clearly(path: Path) -> None:
    with pytest.raises(ArchonConfigError, match=r"layer 1.*(Archon fails|single component)"):
        import_config(_load(path), path.name)


def _component(kind: str, model: str = "m", **options: Any) -> dict[str, Any]:
    return {"type": kind, "model": model, "model_type": "OpenAI_API", **options}


def _warnings(config: Mapping[str, Any], code: str) -> list[str]:
    return [w.message for w in import_config(config, "c.json").warnings if w.code == code]


def test_a_second_generator_layer_replaces_the_first_and_the_waste_is_reported() -> None:
    config = {
        "name": "twice",
        "layers": [
            [_component("generator", "a"), _component("generator", "b")],
            [_component("generator", "c")],
            [_component("fuser", "f")],
        ],
    }
    pipeline = compile_source(import_config(config).text)
    assert pipeline.node("l3_fuser1").inputs == ("l2_generator1",)
    assert {n.id for n in pipeline.nodes} >= {"l1_generator1", "l1_generator2"}  # same cost
    (waste,) = _warnings(config, "W602")
    assert "layer 1" in waste and "layer 2 replaces" in waste and "l1_generator2" in waste
    assert _types_per_layer(export_config(pipeline)) == _types_per_layer(config)


def test_fusers_beside_generators_fuse_the_previous_layer() -> None:
    generators = [_component("generator", f"g{i}") for i in range(8)]
    config = {
        "name": "mixed",
        "layers": [
            [_component("generator", "a", samples=3)],
            [*generators, _component("fuser", "f"), _component("fuser", "f")],
            [_component("fuser", "final")],
        ],
    }
    pipeline = compile_source(import_config(config).text)
    assert pipeline.node("l2_fuser9").inputs == ("l1_generator1",)
    assert pipeline.node("l2_fuser10").inputs == ("l1_generator1",)
    final = pipeline.node("l3_fuser1").inputs
    assert final == (*(f"l2_generator{i}" for i in range(1, 9)), "l2_fuser9", "l2_fuser10")
    assert _warnings(config, "W602") == []
    exported = export_config(pipeline)
    assert _types_per_layer(exported) == _types_per_layer(config)
    assert [c["model"] for c in exported["layers"][1]] == [*(f"g{i}" for i in range(8)), "f", "f"]


def test_unit_tests_no_evaluator_reads_are_reported_as_waste() -> None:
    config = {
        "name": "unread_tests",
        "layers": [
            [_component("generator", samples=5)],
            [_component("unit_test_generator", unit_test_cap=5)],
            [_component("fuser")],
        ],
    }
    (waste,) = _warnings(config, "W602")
    assert "layer 2" in waste and "l2_unit_test_generator1" in waste
    pipeline = compile_source(import_config(config).text)
    assert pipeline.node("l3_fuser1").inputs == ("l1_generator1",)  # tests pass nothing on
    assert _types_per_layer(export_config(pipeline)) == _types_per_layer(config)


def test_a_critic_beside_a_generator_is_flagged() -> None:
    config = {
        "name": "odd",
        "layers": [
            [_component("generator")],
            [_component("critic", samples=1), _component("generator", "b")],
            [_component("fuser")],
        ],
    }
    notes = [w for w in _warnings(config, "W601") if "critiques" in w]
    assert len(notes) == 1 and "pairs critiques with candidates by position" in notes[0]
    (waste,) = _warnings(config, "W602")
    assert "l2_critic1" in waste
    pipeline = compile_source(import_config(config).text)
    assert pipeline.node("l3_fuser1").inputs == ("l2_generator2",)


def test_export_keeps_independent_roots_in_their_own_layers() -> None:
    text = """
    pipeline p {
      tests = unit_test_generate(model = "m")
      gen = generate(models = ["a", "b"], samples = 2)
      unused = generate(models = ["c"])
      more = generate(models = ["d"])
      fuse(models = ["f"]) <- more
    }
    """
    exported = export_config(compile_source(text))
    assert _types_per_layer(exported) == [
        ["unit_test_generator"],
        ["generator", "generator", "generator"],  # gen and unused: nothing reads either
        ["generator"],
        ["fuser"],
    ]


def test_export_refuses_what_archon_cannot_express() -> None:
    text = """
    pipeline p {
      a = generate(models = ["a"])
      b = generate(models = ["b"])
      rank(model = "r") <- a, b
      fuse(models = ["f"]) <- a
    }
    """
    with pytest.raises(ArchonConfigError, match="node 'a' is read together with different"):
        export_config(compile_source(text))
