"""Printing and formatting: parse(print(f)) == f, fmt is idempotent, no comment is lost."""

from __future__ import annotations

import dataclasses
import math
import re
import textwrap
from typing import Any

import pytest

from archon.dsl import ast
from archon.dsl.parser import parse
from archon.dsl.printer import format_source, print_file, print_value
from archon.errors import DiagnosticError

FULL = '''\
# examples/ensemble_rank_fuse.pipe
import "lib/common.pipe"

models {
  small = "local/qwen2.5-coder-0.5b"          # embedded default, runs offline
  judge = model("openai/gpt-4o-mini", api_base = "http://localhost:8000/v1")
}

prompts {
  system = """You are a careful assistant.
Answer "briefly"."""
  user = file("prompts/user.txt")
  escaped = "tab\\there \\"quoted\\" back\\\\slash"
}

block ensemble(models, samples = 3) {
  generate(models = models, samples = samples)
}

pipeline ensemble_rank_fuse {
  budget { calls <= 40  tokens <= 60_000  usd <= 0.05 }   # per query

  gen = generate(models = [small, judge], samples = int(1, 5), temperature = float(0.2, 1.0))
  optional critique(model = judge)                          # presence is a search dimension
  rank(model = judge, top_k = int(1, 5, step = 2))
  r = repeat int(0, 2) {                                        # number of fusion layers
    fuse(models = choice([judge], [small, judge]))
  }
  verify(model = judge, strict = true, threshold = -0.5e-3) <- gen, r
  ensemble([small], 2)
}
'''

CANONICAL = '''\
# examples/ensemble_rank_fuse.pipe
import "lib/common.pipe"

models {
  small = "local/qwen2.5-coder-0.5b"  # embedded default, runs offline
  judge = model("openai/gpt-4o-mini", api_base = "http://localhost:8000/v1")
}

prompts {
  system = """You are a careful assistant.
Answer "briefly"."""
  user = file("prompts/user.txt")
  escaped = "tab\\there \\"quoted\\" back\\\\slash"
}

block ensemble(models, samples = 3) {
  generate(models = models, samples = samples)
}

pipeline ensemble_rank_fuse {
  budget { calls <= 40  tokens <= 60_000  usd <= 0.05 }  # per query

  gen = generate(models = [small, judge], samples = int(1, 5), temperature = float(0.2, 1.0))
  optional critique(model = judge)  # presence is a search dimension
  rank(model = judge, top_k = int(1, 5, step = 2))
  r = repeat int(0, 2) {  # number of fusion layers
    fuse(models = choice([judge], [small, judge]))
  }
  verify(model = judge, strict = true, threshold = -0.0005) <- gen, r
  ensemble([small], 2)
}
'''


def comment_texts(text: str) -> list[str]:
    return [c.text.rstrip() for c in parse(text).comments]


def assert_formats(source: str, expected: str) -> None:
    out = format_source(source)
    assert out == expected
    assert format_source(out) == out
    assert parse(out) == parse(source)
    assert comment_texts(out) == comment_texts(source)


# --- the canonical form -------------------------------------------------------------------


def test_full_file_formats_to_canonical_form() -> None:
    assert_formats(FULL, CANONICAL)


def test_print_file_round_trips_the_full_file() -> None:
    file = parse(FULL)
    bare = ast.File(file.items)  # no comments
    text = print_file(bare)
    assert "#" not in text  # a File without comments prints none
    assert parse(text) == file
    assert print_file(parse(text)) == text


def test_messy_layout_is_normalised() -> None:
    source = (
        'models{a="x",b = "y",}pipeline   p{budget{calls<=1,usd<=2.5}'
        "g=optional gen(models=[a,b,],n=1,)<-x,y repeat 2{f()}}"
    )
    expected = textwrap.dedent(
        """\
        models {
          a = "x"
          b = "y"
        }

        pipeline p {
          budget { calls <= 1  usd <= 2.5 }
          g = optional gen(models = [a, b], n = 1) <- x, y
          repeat 2 {
            f()
          }
        }
        """
    )
    assert_formats(source, expected)


def test_empty_blocks_print_compactly() -> None:
    assert_formats(
        "models { } block b( ) { } pipeline p { budget { } repeat 0 { } }",
        "models {}\n\nblock b() {}\n\npipeline p {\n  budget {}\n  repeat 0 {}\n}\n",
    )


def test_empty_file() -> None:
    assert format_source("") == ""
    assert format_source("\n\n  \n") == ""


# --- values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (ast.Str("plain"), '"plain"'),
        (ast.Str('say "hi"\t\\'), '"say \\"hi\\"\\t\\\\"'),
        (ast.Str("two\nlines"), '"""two\nlines"""'),
        (ast.Str('ends with "\n"'), '"ends with \\"\\n\\""'),
        (ast.Str('has """ inside\n'), '"has \\"\\"\\" inside\\n"'),
        (ast.Str("cr\r"), '"cr\\r"'),
        (ast.Num(3), "3"),
        (ast.Num(-3), "-3"),
        (ast.Num(10**29), f"{10**29:_}"),
        (ast.Num(9999), "9999"),
        (ast.Num(-60000), "-60_000"),
        (ast.Num(0.1), "0.1"),
        (ast.Num(1e-7), "1e-07"),
        (ast.Num(2.5e20), "2.5e+20"),
        (ast.Num(-0.0), "-0.0"),
        (ast.Num(math.inf), "1e999"),
        (ast.Num(-math.inf), "-1e999"),
        (ast.Bool(True), "true"),
        (ast.Ref("fuse_1.2"), "fuse_1.2"),
        (ast.ListValue(()), "[]"),
        (ast.ListValue((ast.Num(1), ast.ListValue((ast.Ref("a"),)))), "[1, [a]]"),
        (
            ast.Call(
                ast.Name("int"),
                (ast.Arg(None, ast.Num(1)), ast.Arg(ast.Name("step"), ast.Num(2))),
            ),
            "int(1, step = 2)",
        ),
    ],
)
def test_print_value(value: ast.Value, text: str) -> None:
    assert print_value(value) == text
    (stmt,) = _body(f"x(a = {text})")
    assert isinstance(stmt, ast.LayerStmt)
    assert stmt.call.args[0].value == value


def test_floats_round_trip_exactly() -> None:
    for number in (0.1 + 0.2, 1 / 3, 5e-324, 1.7976931348623157e308, 123456789.123456789):
        (stmt,) = _body(f"x(a = {print_value(ast.Num(number))})")
        assert isinstance(stmt, ast.LayerStmt)
        parsed = stmt.call.args[0].value
        assert isinstance(parsed, ast.Num)
        assert parsed.value == number
        assert isinstance(parsed.value, float)


def test_deeply_nested_values_print_without_recursion() -> None:
    depth = 5000
    text = f"pipeline p {{ x(a = {'[' * depth}{']' * depth}) }}"
    out = format_source(text)
    assert out == f"pipeline p {{\n  x(\n    a = {'[' * depth}{']' * depth},\n  )\n}}\n"


@pytest.mark.parametrize(
    "value",
    [ast.Num(math.nan), ast.Ref("true"), ast.Ref("not a name"), ast.Ref("")],
)
def test_unprintable_values_are_rejected(value: ast.Value) -> None:
    with pytest.raises(ValueError):
        print_value(value)


def test_empty_inputs_print_as_implicit_input() -> None:
    stmt = ast.LayerStmt(ast.Call(ast.Name("fuse")), inputs=())
    file = ast.File((ast.PipelineDef(ast.Name("p"), (stmt,)),))
    assert print_file(file) == "pipeline p {\n  fuse()\n}\n"


# --- comments -----------------------------------------------------------------------------


def test_comment_placement() -> None:
    source = textwrap.dedent(
        """\
        # file header

        # about the models
        models {  # on the header line
          # before a binding
          a = "x"  # after a binding
          # before the closing brace
        }  # after the block
        pipeline p {
          x() y()  # belongs to y
          # inside the list moves above its statement
          z(a = [1,  # in the list
                 2])

          budget {
            calls <= 1  # per entry
            # between entries
            usd <= 2
          }
          repeat 2 {
            f()
            # end of repeat
          }
        }
        # end of file 1

        # end of file 2
        """
    )
    expected = textwrap.dedent(
        """\
        # file header

        # about the models
        models {  # on the header line
          # before a binding
          a = "x"  # after a binding
          # before the closing brace
        }  # after the block

        pipeline p {
          x()
          y()  # belongs to y
          # inside the list moves above its statement
          # in the list
          z(a = [1, 2])

          budget {
            calls <= 1  # per entry
            # between entries
            usd <= 2
          }
          repeat 2 {
            f()
            # end of repeat
          }
        }

        # end of file 1

        # end of file 2
        """
    )
    assert_formats(source, expected)


def test_comments_only() -> None:
    assert_formats("# one\n\n\n# two  \n", "# one\n\n# two\n")


def test_comment_in_empty_pipeline_keeps_the_block_open() -> None:
    assert_formats("pipeline p {\n# lonely\n}", "pipeline p {\n  # lonely\n}\n")
    assert_formats("pipeline p { # header\n}", "pipeline p {  # header\n}\n")


def test_hash_inside_strings_is_not_a_comment() -> None:
    source = 'prompts { p = "#1" q = """# heading\ntext""" }  # real\n'
    out = format_source(source)
    assert out.count("# real") == 1
    assert comment_texts(out) == ["# real"]
    assert format_source(out) == out


def test_comment_in_block_params_and_repeat_header() -> None:
    source = textwrap.dedent(
        """\
        block b(a,  # first param
                c = 1) {  # opens
          x()
        }
        pipeline p {
          repeat int(0,  # low
                     2) {
            f()
          }
        }
        """
    )
    out = format_source(source)
    assert format_source(out) == out
    assert comment_texts(out) == comment_texts(source)
    assert parse(out) == parse(source)


def test_long_statements_get_one_argument_per_line() -> None:
    long_prompt = "Solve the problem step by step. End with: Answer: <number>"
    source = (
        "pipeline p {\n"
        f'  gen = optional generate(models = [small], samples = 8, system_prompt = "{long_prompt}")'
        "  <- a, b  # why\n"
        "  short(x = 1)\n"
        "}\n"
    )
    expected = (
        "pipeline p {\n"
        "  gen = optional generate(\n"
        "    models = [small],\n"
        "    samples = 8,\n"
        f'    system_prompt = "{long_prompt}",\n'
        "  ) <- a, b  # why\n"
        "  short(x = 1)\n"
        "}\n"
    )
    assert_formats(source, expected)


def test_statements_at_the_width_limit_stay_on_one_line() -> None:
    stmt = "x(a = " + '"' + "y" * 89 + '")'
    assert len("  " + stmt) == 100
    assert_formats(f"pipeline p {{ {stmt} }}", f"pipeline p {{\n  {stmt}\n}}\n")
    wider = stmt.replace("y", "yy", 1)
    assert format_source(f"pipeline p {{ {wider} }}").count("\n") == 5


def test_blank_lines_between_statements_are_kept_once() -> None:
    source = "pipeline p {\n\n\n  a()\n\n\n\n  b()\n  c()\n\n}\n"
    assert_formats(source, "pipeline p {\n  a()\n\n  b()\n  c()\n}\n")


def test_print_file_places_comments_of_a_parsed_file() -> None:
    file = parse("pipeline p {\n  a()  # keep\n}\n")
    assert print_file(file) == "pipeline p {\n  a()  # keep\n}\n"


def test_builder_nodes_mixed_with_parsed_ones_keep_all_comments() -> None:
    """Search writes a winner back by replacing nodes: comments must survive that."""
    file = parse("# top\npipeline p {\n  # about a\n  a(n = int(1, 3))  # trailing\n}\n# end\n")
    (pipeline,) = file.items
    assert isinstance(pipeline, ast.PipelineDef)
    concrete = ast.LayerStmt(ast.Call(ast.Name("a"), (ast.Arg(ast.Name("n"), ast.Num(2)),)))
    new = ast.File(
        (ast.PipelineDef(pipeline.name, (concrete,), span=pipeline.span),),
        comments=file.comments,
    )
    out = print_file(new)
    assert parse(out) == ast.File(new.items)
    assert len(re.findall(r"#", out)) == 4


def _body(text: str) -> tuple[ast.Stmt, ...]:
    (item,) = parse(f"pipeline p {{ {text} }}").items
    assert isinstance(item, ast.PipelineDef)
    return item.body


# --- keywords where a name may stand ------------------------------------------------------

KEYWORDS = ["import", "models", "prompts", "block", "pipeline", "budget", "repeat", "optional"]
KEYWORDS += ["true", "false"]
NAME_POSITIONS = {
    "kind": "pipeline p {{ {k}() }}",
    "label": "pipeline p {{ {k} = x() }}",
    "kind after label": "pipeline p {{ a = {k}() }}",
    "kind after optional": "pipeline p {{ optional {k}() }}",
    "labelled optional": "pipeline p {{ a = optional {k}() }}",
    "repeat label": "pipeline p {{ {k} = repeat 1 {{}} }}",
    "input": "pipeline p {{ x() <- a, {k} }}",
    "argument name": "pipeline p {{ x({k} = 1) }}",
    "reference": "pipeline p {{ x(a = {k}) }}",
    "value call": "pipeline p {{ x(a = {k}()) }}",
    "budget entry": "pipeline p {{ budget {{ {k} <= 1 }} }}",
    "binding": "models {{ {k} = 1 }}",
    "pipeline name": "pipeline {k} {{}}",
    "block name": "block {k}() {{}}",
    "block param": "block b({k}) {{}}",
}


@pytest.mark.parametrize("keyword", KEYWORDS)
@pytest.mark.parametrize("position", list(NAME_POSITIONS))
def test_printer_round_trips_or_refuses_keywords_as_names(position: str, keyword: str) -> None:
    """Wherever the parser accepts a keyword as a name, the printer prints it back; where the
    parser would read it as the keyword, the printer refuses (never prints a different tree)."""
    template = NAME_POSITIONS[position]
    try:
        parsed = parse(template.format(k=keyword))
    except DiagnosticError:
        parsed = None
    if parsed is not None:
        assert parse(print_file(parsed)) == parsed
        return
    # Build the same tree by renaming a stand-in: printing it must fail loudly.
    tree = parse(template.format(k="zz_standin"))
    renamed = _rename(tree, "zz_standin", keyword)
    with pytest.raises(ValueError, match="keyword"):
        print_file(renamed)


def _rename(node: object, old: str, new: str) -> Any:
    if isinstance(node, ast.Name) and node.text == old:
        return ast.Name(new)
    if isinstance(node, ast.Ref) and node.name == old:
        return ast.Ref(new)
    if isinstance(node, tuple):
        return tuple(_rename(item, old, new) for item in node)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        changes = {
            f.name: _rename(getattr(node, f.name), old, new)
            for f in dataclasses.fields(node)
            if f.compare
        }
        return dataclasses.replace(node, **changes)
    return node
