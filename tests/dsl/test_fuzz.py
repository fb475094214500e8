"""Property tests for the parser and printer.

(a) random ASTs -> print -> parse gives the same AST;
(b) strings generated from the grammar itself -> parse -> print -> parse is a fixed point, and
    formatting is idempotent and keeps every comment;
(c) arbitrary text -> parse returns a File or raises DiagnosticError, nothing else.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark
from lark import Lark

from archon.dsl import ast
from archon.dsl.limits import MAX_INT_DIGITS
from archon.dsl.parser import grammar_text, lark_parser, parse
from archon.dsl.printer import format_source, print_file
from archon.errors import DiagnosticError

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KEYWORDS = frozenset(
    {"import", "models", "prompts", "block", "pipeline", "budget", "repeat", "optional"}
    | {"true", "false"}
)

# --- (a) random ASTs ----------------------------------------------------------------------

_SEGMENT = st.text(string.ascii_letters + string.digits + "_", min_size=1, max_size=4)
names = st.builds(
    lambda head, tail, segments: head + tail + "".join("." + s for s in segments),
    st.sampled_from(string.ascii_letters + "_"),
    st.text(string.ascii_letters + string.digits + "_", max_size=6),
    st.lists(_SEGMENT, max_size=2),
).filter(lambda n: n not in KEYWORDS)
name_nodes = names.map(ast.Name)

_LARGEST = 10**MAX_INT_DIGITS - 1  # integer literals have at most MAX_INT_DIGITS digits
numbers = st.one_of(
    st.integers(min_value=-1000, max_value=1000),
    st.integers(min_value=-_LARGEST, max_value=_LARGEST),
    st.floats(allow_nan=False),
).map(ast.Num)

scalars = st.one_of(
    st.text().map(ast.Str),
    st.text(alphabet=st.sampled_from('ab"\\\n\t\r# ')).map(ast.Str),
    numbers,
    st.booleans().map(ast.Bool),
    names.map(ast.Ref),
)


def _containers(children: st.SearchStrategy[ast.Value]) -> st.SearchStrategy[ast.Value]:
    args = st.lists(st.builds(ast.Arg, st.none() | name_nodes, children), max_size=4)
    return st.one_of(
        st.lists(children, max_size=4).map(lambda items: ast.ListValue(tuple(items))),
        st.builds(lambda n, a: ast.Call(n, tuple(a)), name_nodes, args),
    )


values = st.recursive(scalars, _containers, max_leaves=12)
calls = st.builds(
    lambda n, a: ast.Call(n, tuple(a)),
    name_nodes,
    st.lists(st.builds(ast.Arg, st.none() | name_nodes, values), max_size=4),
)

layer_stmts = st.builds(
    ast.LayerStmt,
    call=calls,
    label=st.none() | name_nodes,
    optional=st.booleans(),
    inputs=st.none() | st.lists(name_nodes, min_size=1, max_size=3).map(tuple),
)
budget_stmts = st.lists(st.builds(ast.BudgetEntry, name_nodes, numbers), max_size=4).map(
    lambda entries: ast.BudgetStmt(tuple(entries))
)


def _with_repeats(inner: st.SearchStrategy[ast.Stmt]) -> st.SearchStrategy[ast.Stmt]:
    return st.builds(
        ast.RepeatStmt,
        count=values,
        body=st.lists(inner, max_size=3).map(tuple),
        label=st.none() | name_nodes,
    )


statements = st.recursive(layer_stmts | budget_stmts, _with_repeats, max_leaves=8)
bodies = st.lists(statements, max_size=5).map(tuple)
bindings = st.lists(st.builds(ast.Binding, name_nodes, values), max_size=4).map(tuple)

items = st.one_of(
    st.text().map(lambda path: ast.Import(ast.Str(path))),
    bindings.map(ast.ModelsBlock),
    bindings.map(ast.PromptsBlock),
    st.builds(
        ast.BlockDef,
        name_nodes,
        st.lists(st.builds(ast.BlockParam, name_nodes, st.none() | values), max_size=3).map(tuple),
        bodies,
    ),
    st.builds(ast.PipelineDef, name_nodes, bodies),
)
files = st.lists(items, max_size=5).map(lambda xs: ast.File(tuple(xs)))


@settings(SETTINGS, max_examples=100)
@given(files)
def test_random_ast_prints_and_parses_back(file: ast.File) -> None:
    text = print_file(file)
    parsed = parse(text)
    assert parsed == file
    assert print_file(parsed) == text
    assert format_source(text) == text


# --- (b) strings from the grammar ---------------------------------------------------------

_SPACE = " "


def _spaced(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Tokens followed by a space, so that keywords, names and numbers never run together."""
    return strategy.map(lambda token: token + _SPACE)


_LONG_BODY = st.text(alphabet=st.characters(codec="utf-8", exclude_characters='"'), max_size=12)
GRAMMAR_TERMINALS: dict[str, st.SearchStrategy[str]] = {
    "NAME": _spaced(names),
    "INT": _spaced(st.from_regex(r"-?[0-9][0-9_]{0,8}", fullmatch=True)),
    "FLOAT": _spaced(
        st.from_regex(
            r"-?([0-9][0-9_]{0,4})?\.[0-9][0-9_]{0,4}([eE][+-]?[0-9]{1,3})?", fullmatch=True
        )
        | st.from_regex(r"-?[0-9][0-9_]{0,4}[eE][+-]?[0-9]{1,3}", fullmatch=True)
    ),
    "STRING": _spaced(st.from_regex(r'"([^"\\\n]|\\[^\n])*"', fullmatch=True)),
    "LONG_STRING": _spaced(
        st.builds(lambda a, b: f'"""{a}\n{b}x"""', _LONG_BODY, _LONG_BODY) | st.just('""""""')
    ),
    "WS": st.sampled_from([" ", "\n", "\t", "  \n\n  ", "\r\n"]),
    "COMMENT": st.from_regex(r"#[^\n\r]*", fullmatch=True).map(lambda c: c + "\n"),
    **{keyword.upper(): st.just(keyword + _SPACE) for keyword in KEYWORDS},
}


def _grammar_strings() -> st.SearchStrategy[str]:
    grammar = Lark(grammar_text(), parser="lalr", start="start")
    return from_lark(grammar, start="start", explicit=GRAMMAR_TERMINALS)


@SETTINGS
@given(_grammar_strings())
def test_grammar_strings_reach_a_fixed_point(text: str) -> None:
    first = parse(text)  # generated from the grammar: it must parse
    printed = print_file(first)
    assert parse(printed) == first
    formatted = format_source(text)
    assert parse(formatted) == first
    assert format_source(formatted) == formatted
    before = [c.text.rstrip() for c in first.comments]
    after = [c.text.rstrip() for c in parse(formatted).comments]
    assert after == before


# --- (c) anything at all ------------------------------------------------------------------


def _parse_or_diagnose(text: str) -> None:
    try:
        result = parse(text, "fuzz.pipe")
    except DiagnosticError as error:
        assert error.diagnostics
        for diagnostic in error.diagnostics:
            assert diagnostic.code.startswith("E1")
            assert diagnostic.span is not None
            assert diagnostic.span.line >= 1
    else:
        assert isinstance(result, ast.File)


_PIPE_ALPHABET = st.sampled_from(list('pipeline models { } ( ) [ ] = <- <= , " """ # \n 1 .5 x'))


@SETTINGS
@given(st.text())
def test_any_text_parses_or_diagnoses(text: str) -> None:
    _parse_or_diagnose(text)


@SETTINGS
@given(st.lists(_PIPE_ALPHABET, max_size=60).map("".join))
def test_pipe_like_text_parses_or_diagnoses(text: str) -> None:
    _parse_or_diagnose(text)


@SETTINGS
@given(st.binary(max_size=200))
def test_binary_junk_parses_or_diagnoses(data: bytes) -> None:
    _parse_or_diagnose(data.decode("utf-8", errors="replace"))


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5000,
        "pipeline p { x(a = " + "[" * 5000,
        "pipeline p { x(a = " + "[" * 5000 + "]" * 5000 + ") }",
        "pipeline p { x(a = " + "f(" * 2000 + ")" * 2000 + ") }",
        "pipeline p {" + " repeat 1 {" * 1000 + "}" * 1000 + " }",
        '"' * 10_000,
        "#" * 10_000,
        "\x00\ufeff\u2028",
    ],
    ids=["brackets", "unclosed", "closed", "calls", "repeats", "quotes", "hashes", "controls"],
)
def test_pathological_inputs(text: str) -> None:
    _parse_or_diagnose(text)


def test_huge_file_parses() -> None:
    # Short statements keep this about a second or two: lark costs ~30us per token here.
    text = "pipeline p {\n" + "  x()\n" * 20_000 + "}\n"
    file = parse(text)
    (pipeline,) = file.items
    assert isinstance(pipeline, ast.PipelineDef)
    assert len(pipeline.body) == 20_000


# --- the grammar itself -------------------------------------------------------------------


def test_grammar_is_strict_clean() -> None:
    """``strict=True`` rejects LALR conflicts and colliding terminal regexes."""
    pytest.importorskip("interegular", reason="lark's strict mode needs interegular")
    Lark(grammar_text(), parser="lalr", strict=True)


def test_shared_parser_is_lalr() -> None:
    assert lark_parser().options.parser == "lalr"
