"""Top-level definitions: model aliases and their options."""

from __future__ import annotations

from archon.compiler import compile_program, compile_source
from archon.compiler.load import load_source
from archon.source import SourceFile

TWO_SERVERS = """
models {
  a = model("openai/qwen", api_base = "http://127.0.0.1:8000/v1")
  b = model("openai/qwen", api_base = "http://127.0.0.1:9000/v1")
  c = "openai/qwen"
}
pipeline p { generate(models = [a, b]) }
"""


def test_same_model_string_with_different_options_warns_once_per_clash() -> None:
    result = compile_program(load_source(SourceFile("m.pipe", TWO_SERVERS)))
    warnings = [d for d in result.diagnostics if d.code == "W215"]
    assert [w.span.line if w.span else None for w in warnings] == [4, 5]
    assert "'a' and 'b'" in warnings[0].message
    assert result.pipeline is not None  # a warning, not an error


def test_aliases_with_equal_options_do_not_warn() -> None:
    text = TWO_SERVERS.replace("9000", "8000").replace('  c = "openai/qwen"\n', "")
    result = compile_program(load_source(SourceFile("m.pipe", text)))
    assert not [d for d in result.diagnostics if d.code == "W215"]
    assert compile_source(text).models[0].options[0].value == "http://127.0.0.1:8000/v1"
