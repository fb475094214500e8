"""The Python builder produces the same AST (and so the same IR) as the .pipe language."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest

from archon.build import (
    Block,
    Body,
    Pipeline,
    choice,
    float_range,
    int_range,
    model,
    prompt_file,
    ref,
    to_value,
)
from archon.dsl import ast
from archon.dsl.parser import parse
from archon.ir import strip_spans

MODELS = {"small": "local/qwen2.5-coder-0.5b", "judge": "openai/gpt-4o-mini"}


def example() -> Pipeline:
    return (
        Pipeline("x", models=MODELS)
        .budget(calls=40, usd=0.05)
        .generate(models=[ref("small"), ref("judge")], samples=choice(1, 3, 5), label="gen")
        .optional()
        .critique(model=ref("judge"))
        .rank(model=ref("judge"), top_k=2)
        .repeat(int_range(0, 2), lambda b: b.fuse(models=[ref("judge")]))
        .layer("verify", model=ref("judge"), inputs=["gen"])
    )


EXAMPLE_PIPE = """
models {
  small = "local/qwen2.5-coder-0.5b"
  judge = "openai/gpt-4o-mini"
}

pipeline x {
  budget { calls <= 40  usd <= 0.05 }
  gen = generate(models = [small, judge], samples = choice(1, 3, 5))
  optional critique(model = judge)
  rank(model = judge, top_k = 2)
  repeat int(0, 2) {
    fuse(models = [judge])
  }
  verify(model = judge) <- gen
}
"""


def test_builder_and_pipe_text_give_the_same_ast() -> None:
    assert example().to_ast() == parse(EXAMPLE_PIPE)


def test_to_pipe_is_canonical_and_parses_back() -> None:
    built = example()
    text = built.to_pipe()
    assert parse(text) == built.to_ast()
    assert text == EXAMPLE_PIPE.lstrip("\n")


def test_builder_and_pipe_text_compile_to_the_same_ir() -> None:
    import archon

    from_builder = example().compile()
    from_text = archon.compile_source(EXAMPLE_PIPE)
    assert strip_spans(from_builder) == strip_spans(from_text)
    assert from_builder.fingerprint() == from_text.fingerprint()


def test_every_feature_round_trips() -> None:
    ens = Block("ens", ["models", ("samples", 3)]).generate(
        models=ref("models"), samples=ref("samples")
    )
    built = (
        Pipeline(
            "everything",
            models={"m": model("openai/x", api_base="http://localhost:8000/v1")},
            prompts={"sys": "one\ntwo", "user": prompt_file("prompts/user.txt")},
            imports=["lib/common.pipe"],
            blocks=[ens],
        )
        .generate(
            models=[ref("m")],
            temperature=float_range(0.1, 1.0, log=True),
            n=int_range(1, 9, step=2, default=3),
            stop=["\n", 'say "x"'],
            flag=False,
            ratio=-1.5e-9,
        )
        .ens([ref("m")], 2, label="e")
        .vote(optional=True, inputs=["e"])
        .unit_test_generate(model=ref("m"), label="tests")
        .repeat(choice(0, 1), Body().critique(model=ref("m")).optional().fuse(), label="loop")
    )
    text = built.to_pipe()
    assert parse(text) == built.to_ast()
    assert 'import "lib/common.pipe"' in text
    assert "block ens(models, samples = 3) {" in text
    assert "float(0.1, 1.0, log = true)" in text
    assert "int(1, 9, step = 2, default = 3)" in text
    assert "e = ens([m], 2)" in text
    assert "optional vote() <- e" in text
    assert "tests = unit_test_generate(model = m)" in text
    assert "loop = repeat choice(0, 1) {" in text
    assert "    optional fuse()" in text


def test_values_map_from_python() -> None:
    assert to_value("s") == ast.Str("s")
    assert to_value(True) == ast.Bool(True)
    assert isinstance(to_value(True), ast.Bool)
    assert to_value(3) == ast.Num(3)
    assert to_value(0.5) == ast.Num(0.5)
    assert to_value([1, ("a", [])]) == ast.ListValue(
        (ast.Num(1), ast.ListValue((ast.Str("a"), ast.ListValue(()))))
    )
    assert to_value(ref("judge")) == ast.Ref("judge")
    assert to_value(math.inf) == ast.Num(math.inf)


def test_holes_build_value_calls() -> None:
    def c(name: str, *args: ast.Arg) -> ast.Call:
        return ast.Call(ast.Name(name), args)

    def p(value: ast.Value) -> ast.Arg:
        return ast.Arg(None, value)

    assert choice(1, "a") == c("choice", p(ast.Num(1)), p(ast.Str("a")))
    assert int_range(0, 4) == c("int", p(ast.Num(0)), p(ast.Num(4)))
    assert float_range(0.0, 1.0, log=True) == c(
        "float", p(ast.Num(0.0)), p(ast.Num(1.0)), ast.Arg(ast.Name("log"), ast.Bool(True))
    )
    assert prompt_file("a.txt") == c("file", p(ast.Str("a.txt")))


def test_builders_are_immutable() -> None:
    base = Pipeline("p", models=MODELS).generate(models=[ref("small")])
    before = base.to_ast()
    longer = base.rank(model=ref("judge"))
    other = base.fuse(models=[ref("judge")])
    marked = base.optional()
    assert base.to_ast() == before
    assert len(base.statements) == 1
    assert len(longer.statements) == len(other.statements) == 2
    assert longer.statements[0] is other.statements[0]
    assert not base.pending_optional and marked.pending_optional
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.name = "q"  # type: ignore[misc]


def test_optional_flag_and_keyword_are_equivalent() -> None:
    a = Pipeline("p").optional().critique(model=ref("j"))
    b = Pipeline("p").critique(model=ref("j"), optional=True)
    assert a.to_ast() == b.to_ast()
    (stmt,) = a.statements
    assert isinstance(stmt, ast.LayerStmt) and stmt.optional


def test_dangling_optional_is_an_error() -> None:
    with pytest.raises(ValueError, match="optional"):
        Pipeline("p").optional().to_ast()
    with pytest.raises(ValueError, match="optional"):
        Pipeline("p").optional().budget(calls=1)
    with pytest.raises(ValueError, match="optional"):
        Pipeline("p").repeat(2, lambda b: b.optional())


def test_empty_inputs_mean_implicit() -> None:
    (stmt,) = Pipeline("p").fuse(inputs=[]).statements
    assert isinstance(stmt, ast.LayerStmt) and stmt.inputs is None


@pytest.mark.parametrize(
    "build",
    [
        lambda: Pipeline("p").layer("repeat"),
        lambda: Pipeline("p").layer("not a kind"),
        lambda: Pipeline("p").fuse(label="optional"),
        lambda: Pipeline("pipeline"),
        lambda: ref("true"),
        lambda: ref("1abc"),
        lambda: Pipeline("p", models={"bad name": "x"}),
        lambda: to_value(math.nan),
        lambda: choice(),
    ],
)
def test_names_and_values_the_language_cannot_spell_are_rejected(build: object) -> None:
    assert callable(build)
    with pytest.raises(ValueError):
        build()


def test_unsupported_python_values_are_rejected() -> None:
    with pytest.raises(TypeError):
        to_value({"a": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Pipeline("p").budget(calls="many")  # type: ignore[arg-type]


def test_private_attributes_are_not_layer_kinds() -> None:
    with pytest.raises(AttributeError):
        Pipeline("p")._not_a_kind  # noqa: B018
    assert "x" in repr(Pipeline("x"))


def test_compile_reports_diagnostics() -> None:
    from archon.errors import DiagnosticError

    with pytest.raises(DiagnosticError) as info:
        Pipeline("p").layer("no_such_kind").compile()
    assert any(d.code.startswith("E2") for d in info.value.diagnostics)


# --- docs/python-api.md stays runnable ---------------------------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"
DOC_BLOCKS = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)


def test_docs_have_examples() -> None:
    assert len(DOC_BLOCKS) >= 4


@pytest.mark.parametrize("code", DOC_BLOCKS, ids=[f"block{i}" for i in range(len(DOC_BLOCKS))])
def test_docs_examples_run(code: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(code, str(DOCS), "exec"), {"__name__": "docs_example"})


def test_docs_printed_pipeline_matches() -> None:
    text = DOCS.read_text(encoding="utf-8")
    code = DOC_BLOCKS[1]
    namespace: dict[str, object] = {}
    exec(compile(code.replace("print(p.to_pipe())", ""), str(DOCS), "exec"), namespace)
    built = namespace["p"]
    assert isinstance(built, Pipeline)
    shown = text.split("prints\n\n```\n", 1)[1].split("```", 1)[0]
    assert built.to_pipe() == shown
