"""Archon JSON configs: import to .pipe, export back, round trips, warnings for unknown keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from archon.cli import app
from archon.compiler import compile_source
from archon.interop.archon_config import ArchonConfigError, export_config, import_config

ISSUE_EXAMPLE: dict[str, Any] = {
    "name": "two_models_rank_critic_fuse",
    "layers": [
        [
            {
                "type": "generator",
                "model": "gpt-4o",
                "model_type": "OpenAI_API",
                "temperature": 0.7,
                "max_tokens": 2048,
                "samples": 5,
            },
            {
                "type": "generator",
                "model": "claude-3-5-sonnet-20240620",
                "model_type": "Anthropic_API",
                "temperature": 0.7,
                "max_tokens": 2048,
                "samples": 5,
            },
        ],
        [
            {
                "type": "ranker",
                "model": "gpt-4o",
                "model_type": "OpenAI_API",
                "top_k": 5,
                "ranker_batch_size": 10,
                "use_critiques": False,
                "temperature": 0.7,
                "max_tokens": 2048,
            }
        ],
        [
            {
                "type": "critic",
                "model": "gpt-4o",
                "model_type": "OpenAI_API",
                "temperature": 0.7,
                "max_tokens": 2048,
                "samples": 1,
            }
        ],
        [
            {
                "type": "fuser",
                "model": "gpt-4o",
                "model_type": "OpenAI_API",
                "temperature": 0.7,
                "max_tokens": 2048,
                "samples": 1,
            }
        ],
    ],
}

CODE_CONFIG: dict[str, Any] = {
    "name": "code",
    "layers": [
        {
            "branches": 1,
            "models": [
                {
                    "type": "generator",
                    "model": "Qwen/Qwen2-72B-Instruct",
                    "model_type": "Together_API",
                    "samples": 10,
                    "temperature": 0.7,
                    "max_tokens": 1024,
                }
            ],
        },
        [
            {
                "type": "unit_test_generator",
                "model": "gpt-4o",
                "model_type": "OpenAI_API",
                "unit_test_cap": 5,
                "temperature": 0.2,
                "max_tokens": 1024,
            }
        ],
        [
            {
                "type": "unit_test_evaluator",
                "model": "gpt-4o",
                "model_type": "OpenAI_API",
                "top_k": 3,
                "first_k": 2,
                "remove_unit_tests_from_prompt": True,
            }
        ],
        [{"type": "fuser", "model": "gpt-4o", "model_type": "OpenAI_API", "samples": 1}],
    ],
}


def _shape(config: dict[str, Any]) -> list[list[tuple[str, str]]]:
    return [[(c["type"], c["model"]) for c in layer] for layer in config["layers"]]


def test_issue_example_imports_to_a_pipeline_with_the_same_layers() -> None:
    result = import_config(ISSUE_EXAMPLE, "example.json")
    pipeline = compile_source(result.text, "example.pipe")
    assert [n.kind for n in pipeline.nodes] == ["generate", "generate", "rank", "critique", "fuse"]
    rank = pipeline.node("l2_ranker1")
    assert rank.inputs == ("l1_generator1", "l1_generator2")
    assert rank.arguments()["top_k"] == 5 and rank.arguments()["use_critiques"] is False
    assert pipeline.node("l1_generator2").arguments()["models"] == (
        "anthropic/claude-3-5-sonnet-20240620",
    )
    assert pipeline.output == "l4_fuser1"


def test_keys_without_equivalent_warn_with_key_and_file_and_are_kept() -> None:
    result = import_config(ISSUE_EXAMPLE, "configs/example.json")
    messages = [w.message for w in result.warnings]
    assert any("ranker_batch_size" in m and "configs/example.json" in m for m in messages)
    assert "ranker_batch_size = 10" in result.text  # kept in the comment block


def test_unknown_keys_and_typos_warn_never_crash() -> None:
    config = json.loads(json.dumps(ISSUE_EXAMPLE))
    config["layers"][1][0]["top_kk"] = 3
    config["extra"] = {"a": 1}
    config["layers"][2].append({"type": "critik", "model": "x"})
    result = import_config(config, "typos.json")
    messages = " ".join(w.message for w in result.warnings)
    assert "top_kk" in messages and "extra" in messages and "critik" in messages
    assert any(w.hint == "did you mean 'top_k'?" for w in result.warnings)
    assert "top_kk = 3" in result.text and '"critik"' in result.text
    compile_source(result.text, "typos.pipe")  # still a valid pipeline


def test_export_reproduces_layer_structure_and_types() -> None:
    pipeline = compile_source(import_config(ISSUE_EXAMPLE).text)
    exported = export_config(pipeline)
    assert _shape(exported) == _shape(ISSUE_EXAMPLE)
    assert exported["layers"][0][1]["model_type"] == "Anthropic_API"


@pytest.mark.parametrize("config", [ISSUE_EXAMPLE, CODE_CONFIG])
def test_import_export_import_is_stable(config: dict[str, Any]) -> None:
    first = import_config(config)
    exported = export_config(compile_source(first.text))
    second = import_config(exported)
    assert compile_source(first.text).fingerprint() == compile_source(second.text).fingerprint()
    assert export_config(compile_source(second.text)) == exported


def test_unit_test_layers_wire_candidates_and_tests() -> None:
    pipeline = compile_source(import_config(CODE_CONFIG).text)
    evaluator = pipeline.node("l3_unit_test_evaluator1")
    assert evaluator.inputs == ("l1_generator1", "l2_unit_test_generator1")
    assert pipeline.node("l1_generator1").arguments()["models"] == (
        "together_ai/Qwen/Qwen2-72B-Instruct",
    )
    assert pipeline.node("l2_unit_test_generator1").arguments()["num_tests"] == 5


def test_export_refuses_templates_and_non_archon_kinds() -> None:
    with pytest.raises(ArchonConfigError, match="holes"):
        export_config(
            compile_source('pipeline p { generate(models = ["m"], samples = int(1, 3)) }')
        )
    with pytest.raises(ArchonConfigError, match="vote"):
        export_config(compile_source('pipeline p { generate(models = ["m"])  vote() }'))


def test_not_a_config_is_a_clear_error() -> None:
    with pytest.raises(ArchonConfigError, match="layers"):
        import_config({"name": "x"}, "x.json")


def test_cli_round_trip(tmp_path: Path) -> None:
    runner = CliRunner()
    source = tmp_path / "config.json"
    source.write_text(json.dumps(ISSUE_EXAMPLE))
    pipe = tmp_path / "out.pipe"
    imported = runner.invoke(app, ["import-archon", str(source), "-o", str(pipe)])
    assert imported.exit_code == 0, imported.output
    assert "ranker_batch_size" in imported.stderr
    exported = runner.invoke(app, ["export-archon", str(pipe)])
    assert exported.exit_code == 0, exported.output
    assert _shape(json.loads(exported.stdout)) == _shape(ISSUE_EXAMPLE)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    failed = runner.invoke(app, ["import-archon", str(broken)])
    assert failed.exit_code == 2 and "not valid JSON" in failed.stderr
