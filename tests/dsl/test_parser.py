"""Each construct of the .pipe grammar parses to the expected AST; spans point at the source."""

from __future__ import annotations

import pytest

from archon.dsl import ast
from archon.dsl.parser import parse
from archon.errors import DiagnosticError
from archon.source import Span


def N(text: str) -> ast.Name:
    return ast.Name(text)


def named(name: str, value: ast.Value) -> ast.Arg:
    return ast.Arg(N(name), value)


def pos(value: ast.Value) -> ast.Arg:
    return ast.Arg(None, value)


def call(name: str, *args: ast.Arg) -> ast.Call:
    return ast.Call(N(name), tuple(args))


def body(text: str) -> tuple[ast.Stmt, ...]:
    """The statements of ``pipeline p { text }``."""
    (item,) = parse(f"pipeline p {{ {text} }}").items
    assert isinstance(item, ast.PipelineDef)
    return item.body


def value(text: str) -> ast.Value:
    """The value of ``x(a = text)``."""
    (stmt,) = body(f"x(a = {text})")
    assert isinstance(stmt, ast.LayerStmt)
    return stmt.call.args[0].value


# --- top-level items ------------------------------------------------------------------------


def test_empty_file_has_no_items() -> None:
    assert parse("") == ast.File(())
    assert parse("  \n# only a comment\n").items == ()


def test_import() -> None:
    assert parse('import "lib/common.pipe"').items == (ast.Import(ast.Str("lib/common.pipe")),)


def test_models_block_with_strings_and_model_calls() -> None:
    text = 'models {\n  small = "local/q"\n  judge = model("openai/x", api_base = "http://h")\n}'
    assert parse(text).items == (
        ast.ModelsBlock(
            (
                ast.Binding(N("small"), ast.Str("local/q")),
                ast.Binding(
                    N("judge"),
                    call("model", pos(ast.Str("openai/x")), named("api_base", ast.Str("http://h"))),
                ),
            )
        ),
    )


def test_bindings_may_be_separated_by_commas() -> None:
    assert parse('models { a = "x", b = "y", }') == parse('models { a = "x" b = "y" }')


def test_prompts_block_with_long_string_and_file() -> None:
    text = 'prompts {\n  sys = """You are\n  "helpful"."""\n  user = file("prompts/u.txt")\n}'
    assert parse(text).items == (
        ast.PromptsBlock(
            (
                ast.Binding(N("sys"), ast.Str('You are\n  "helpful".')),
                ast.Binding(N("user"), call("file", pos(ast.Str("prompts/u.txt")))),
            )
        ),
    )


def test_block_definition_with_params_and_defaults() -> None:
    (item,) = parse("block ens(models, samples = 3,) { generate(models = models) }").items
    assert item == ast.BlockDef(
        N("ens"),
        (ast.BlockParam(N("models")), ast.BlockParam(N("samples"), ast.Num(3))),
        (ast.LayerStmt(call("generate", named("models", ast.Ref("models")))),),
    )


def test_block_without_params_and_empty_pipeline() -> None:
    assert parse("block b() {}\npipeline p {}").items == (
        ast.BlockDef(N("b"), (), ()),
        ast.PipelineDef(N("p"), ()),
    )


def test_file_pipelines_lists_only_pipelines() -> None:
    file = parse('import "x.pipe"\npipeline a {}\nblock b() {}\npipeline c {}')
    assert [p.name.text for p in file.pipelines()] == ["a", "c"]


# --- statements ---------------------------------------------------------------------------


def test_budget_entries_with_and_without_commas() -> None:
    expected = (
        ast.BudgetStmt(
            (
                ast.BudgetEntry(N("calls"), ast.Num(40)),
                ast.BudgetEntry(N("tokens"), ast.Num(60000)),
                ast.BudgetEntry(N("usd"), ast.Num(0.05)),
            )
        ),
    )
    assert body("budget { calls <= 40  tokens <= 60_000  usd <= 0.05 }") == expected
    assert body("budget { calls <= 40, tokens <= 60_000, usd <= 0.05 }") == expected


def test_layer_statement_forms() -> None:
    assert body("rank(model = judge, top_k = 2)") == (
        ast.LayerStmt(call("rank", named("model", ast.Ref("judge")), named("top_k", ast.Num(2)))),
    )
    assert body("g = optional critique() <- a, fuse_1.2") == (
        ast.LayerStmt(
            call("critique"),
            label=N("g"),
            optional=True,
            inputs=(N("a"), N("fuse_1.2")),
        ),
    )


def test_optional_may_come_before_the_label() -> None:
    before, after = body("optional g = critique() <- a  g = optional critique() <- a")
    assert (
        before
        == after
        == ast.LayerStmt(call("critique"), label=N("g"), optional=True, inputs=(N("a"),))
    )
    assert (before.span.col, before.span.end_col) == (14, 42)
    assert (after.span.col, after.span.end_col) == (44, 72)


def test_inputs_absent_means_none() -> None:
    (stmt,) = body("fuse()")
    assert isinstance(stmt, ast.LayerStmt)
    assert stmt.inputs is None
    assert not stmt.optional
    assert stmt.label is None


def test_positional_layer_arguments_for_block_calls() -> None:
    assert body('ens([a, b], 3, note = "x")') == (
        ast.LayerStmt(
            call(
                "ens",
                pos(ast.ListValue((ast.Ref("a"), ast.Ref("b")))),
                pos(ast.Num(3)),
                named("note", ast.Str("x")),
            )
        ),
    )


def test_repeat_with_int_and_hole_and_label() -> None:
    assert body("repeat 2 { fuse() }") == (
        ast.RepeatStmt(ast.Num(2), (ast.LayerStmt(call("fuse")),)),
    )
    assert body("r = repeat int(0, 2) { repeat 1 { } }") == (
        ast.RepeatStmt(
            call("int", pos(ast.Num(0)), pos(ast.Num(2))),
            (ast.RepeatStmt(ast.Num(1), ()),),
            label=N("r"),
        ),
    )


def test_statements_need_no_separators() -> None:
    assert len(body("a() b() <- x c = d() budget { } repeat 1 { e() }")) == 5


# --- values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", ast.Num(1)),
        ("-7", ast.Num(-7)),
        ("60_000", ast.Num(60000)),
        ("0.5", ast.Num(0.5)),
        (".5", ast.Num(0.5)),
        ("-1.5e3", ast.Num(-1500.0)),
        ("2E-2", ast.Num(0.02)),
        ("1e5", ast.Num(100000.0)),
        ("true", ast.Bool(True)),
        ("false", ast.Bool(False)),
        ('"a\\nb\\t\\"q\\" \\\\"', ast.Str('a\nb\t"q" \\')),
        ('"keep \\q"', ast.Str("keep \\q")),
        ('"""raw \\n "quoted" # not a comment"""', ast.Str('raw \\n "quoted" # not a comment')),
        ('""""starts with a quote"""', ast.Str('"starts with a quote')),
        ('""""""', ast.Str("")),
        ("[]", ast.ListValue(())),
        ("[1, [true], ]", ast.ListValue((ast.Num(1), ast.ListValue((ast.Bool(True),))))),
        ("judge", ast.Ref("judge")),
        ("fuse_1.2", ast.Ref("fuse_1.2")),
        ("models", ast.Ref("models")),  # keywords are plain names where no keyword fits
        ("truex", ast.Ref("truex")),
        (
            "choice([a], [a, b])",
            call(
                "choice",
                pos(ast.ListValue((ast.Ref("a"),))),
                pos(ast.ListValue((ast.Ref("a"), ast.Ref("b")))),
            ),
        ),
        (
            "float(0.1, 1.0, log = true)",
            call("float", pos(ast.Num(0.1)), pos(ast.Num(1.0)), named("log", ast.Bool(True))),
        ),
        (
            "int(1, 5, step = 2)",
            call("int", pos(ast.Num(1)), pos(ast.Num(5)), named("step", ast.Num(2))),
        ),
    ],
)
def test_values(text: str, expected: ast.Value) -> None:
    assert value(text) == expected


def test_number_types_are_kept() -> None:
    assert isinstance(_num("3"), int)
    assert isinstance(_num("3.0"), float)
    assert isinstance(_num("3e0"), float)


def _num(text: str) -> int | float:
    result = value(text)
    assert isinstance(result, ast.Num)
    return result.value


# --- spans --------------------------------------------------------------------------------

SPANNED = """\
models {
  judge = "openai/gpt-4o-mini"
}

pipeline p {
  gen = generate(models = [judge], samples = 3)
  rank(top_k = 2) <- gen
}
"""


def test_spans_point_at_the_source() -> None:
    file = parse(SPANNED, "x.pipe")
    models, pipeline = file.items
    assert isinstance(models, ast.ModelsBlock)
    assert isinstance(pipeline, ast.PipelineDef)
    binding = models.entries[0]
    assert (binding.span.path, binding.span.line, binding.span.col) == ("x.pipe", 2, 3)
    assert (binding.value.span.line, binding.value.span.col) == (2, 11)
    assert (binding.value.span.end_line, binding.value.span.end_col) == (2, 31)
    assert (pipeline.span.line, pipeline.span.col, pipeline.span.end_line) == (5, 1, 8)
    assert (pipeline.name.span.line, pipeline.name.span.col) == (5, 10)
    gen, rank = pipeline.body
    assert isinstance(gen, ast.LayerStmt)
    assert isinstance(rank, ast.LayerStmt)
    assert gen.label is not None
    assert (gen.label.span.line, gen.label.span.col) == (6, 3)
    assert (gen.call.span.line, gen.call.span.col, gen.call.span.end_col) == (6, 9, 48)
    samples = gen.call.args[1]
    assert samples.name is not None
    assert (samples.name.span.col, samples.value.span.col) == (36, 46)
    assert rank.inputs is not None
    assert (rank.inputs[0].span.line, rank.inputs[0].span.col) == (7, 22)
    assert (rank.span.col, rank.span.end_col) == (3, 25)


KEYWORDS_AND_PUNCTUATION = """\
import "lib.pipe"
block b() { budget { calls <= 4 } }
pipeline p {
  r = repeat 2 { x(a = [true, false], b = "s", c = \"""t\""") }
}
"""


def _where(span: object) -> tuple[int, int, int, int]:
    assert isinstance(span, Span)
    return (span.line, span.col, span.end_line, span.end_col)


def test_spans_include_keywords_and_punctuation() -> None:
    """Keywords and brackets are not in the tree, yet the spans still cover them."""
    imported, block, pipeline = parse(KEYWORDS_AND_PUNCTUATION).items
    assert isinstance(imported, ast.Import)
    assert isinstance(block, ast.BlockDef)
    assert isinstance(pipeline, ast.PipelineDef)
    assert _where(imported.span) == (1, 1, 1, 18)
    assert _where(block.span) == (2, 1, 2, 36)
    assert block.params == ()
    (budget,) = block.body
    assert isinstance(budget, ast.BudgetStmt)
    assert _where(budget.span) == (2, 13, 2, 34)
    (repeat,) = pipeline.body
    assert isinstance(repeat, ast.RepeatStmt)
    assert _where(repeat.span) == (4, 3, 4, 62)
    (layer,) = repeat.body
    assert isinstance(layer, ast.LayerStmt)
    assert _where(layer.call.span) == (4, 18, 4, 60)
    listed, short, long = (arg.value for arg in layer.call.args)
    assert isinstance(listed, ast.ListValue)
    assert _where(listed.span) == (4, 24, 4, 37)
    assert [_where(item.span) for item in listed.items] == [(4, 25, 4, 29), (4, 31, 4, 36)]
    assert (short, long) == (ast.Str("s"), ast.Str("t"))
    assert _where(short.span) == (4, 43, 4, 46)
    assert _where(long.span) == (4, 52, 4, 59)


def test_comments_are_collected_with_spans_but_not_in_strings() -> None:
    text = 'pipeline p {  # one\n  x(a = "#no", b = """#no\n""")  # two\n}\n# three'
    file = parse(text)
    assert [c.text for c in file.comments] == ["# one", "# two", "# three"]
    assert [(c.span.line, c.span.col) for c in file.comments] == [(1, 15), (3, 7), (5, 1)]


def test_equality_ignores_spans_and_path() -> None:
    assert parse("pipeline p { x() }", "a.pipe") == parse("\n\npipeline   p{\nx(\n)}", "b.pipe")


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "line", "col"),
    [
        ("pipeline p { x(a = 'b') }", "E101", 1, 20),
        ("pipeline p {\n  rank(top_k 2)\n}", "E102", 2, 14),
        ("pipeline p {\n  generate(", "E103", 2, 12),
    ],
)
def test_syntax_errors_are_located(text: str, code: str, line: int, col: int) -> None:
    with pytest.raises(DiagnosticError) as info:
        parse(text, "bad.pipe")
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == code
    assert diagnostic.span is not None
    assert (diagnostic.span.path, diagnostic.span.line, diagnostic.span.col) == (
        "bad.pipe",
        line,
        col,
    )


def test_single_quotes_get_a_hint() -> None:
    with pytest.raises(DiagnosticError) as info:
        parse("pipeline p { x(a = 'b') }")
    assert info.value.diagnostics[0].hint == "strings are written in double quotes"
