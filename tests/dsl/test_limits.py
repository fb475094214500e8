"""Bounded ``.pipe`` input: size, nesting and unrolled size give diagnostics with a code and a
position, never a RecursionError, a hang or an exhausted memory."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archon.cli import app
from archon.compiler import check_file, compile_ast, compile_source
from archon.dsl import ast
from archon.dsl.limits import SourceLimits, nesting_problem
from archon.dsl.parser import grammar_text, parse
from archon.dsl.printer import MAX_STATEMENT_DEPTH, format_source, print_file
from archon.errors import DiagnosticError

GEN = 'generate(models = ["local/m"])'


def _codes(
    path: Path, limits: SourceLimits | None = None
) -> list[tuple[str, int | None, int | None]]:
    result = check_file(path, limits=limits)
    assert result.pipeline is None
    return [
        (d.code, d.span.line if d.span else None, d.span.col if d.span else None)
        for d in result.errors
    ]


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.pipe"
    path.write_text("pipeline p {\n  " + GEN + "\n}\n" + "# padding\n" * 200)
    assert _codes(path, SourceLimits(max_bytes=100)) == [("E106", 1, 1)]
    assert check_file(path).errors == ()  # under the 1 MB default


def test_the_default_size_limit_is_one_megabyte(tmp_path: Path) -> None:
    path = tmp_path / "big.pipe"
    path.write_text('prompts { p = """' + "x" * 1_000_001 + '""" }\npipeline p { ' + GEN + " }\n")
    result = check_file(path)
    assert [d.code for d in result.errors] == ["E106"]
    assert "1,000,000" in result.errors[0].message


def test_an_import_over_the_size_limit_points_at_the_import(tmp_path: Path) -> None:
    (tmp_path / "lib.pipe").write_text("# x\n" * 100)
    main = tmp_path / "main.pipe"
    main.write_text('import "lib.pipe"\npipeline p {\n  ' + GEN + "\n}\n")
    assert _codes(main, SourceLimits(max_bytes=200)) == [("E106", 1, 8)]


def test_source_text_over_the_limit(tmp_path: Path) -> None:
    with pytest.raises(DiagnosticError) as caught:
        compile_source("pipeline p { " + GEN + " }" + " " * 50, limits=SourceLimits(max_bytes=40))
    assert caught.value.diagnostics[0].code == "E106"


def _nested_repeats(depth: int) -> str:
    return "pipeline p {\n" + "repeat 1 {\n" * depth + GEN + "\n" + "}\n" * depth + "}\n"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (_nested_repeats(500), (65, 1)),
        ("pipeline p {\n  generate(models = " + "[" * 500 + '"m"' + "]" * 500 + ")\n}\n", (2, 83)),
        (
            "pipeline p {\n  generate(temperature = "
            + "choice(" * 300
            + "1"
            + ")" * 300
            + ")\n}\n",
            (2, 460),
        ),
    ],
    ids=["repeats", "lists", "calls"],
)
def test_deep_nesting_is_a_diagnostic_with_a_position(
    tmp_path: Path, text: str, where: tuple[int, int]
) -> None:
    path = tmp_path / "deep.pipe"
    path.write_text(text)
    assert _codes(path) == [("E104", *where)]


def test_nesting_up_to_the_limit_compiles(tmp_path: Path) -> None:
    path = tmp_path / "ok.pipe"
    path.write_text(_nested_repeats(61))  # pipeline + 61 repeats + the call + its list = 64
    assert check_file(path).errors == ()
    path.write_text(_nested_repeats(62))
    assert [d.code for d in check_file(path).errors] == ["E104"]
    assert check_file(path, limits=SourceLimits(max_depth=100)).errors == ()


def test_blocks_using_blocks_are_bounded(tmp_path: Path) -> None:
    lines = ["block b0() {\n  " + GEN + "\n}\n"]
    lines += [f"block b{i}() {{\n  b{i - 1}()\n}}\n" for i in range(1, 400)]
    path = tmp_path / "chain.pipe"
    path.write_text("".join(lines) + "pipeline p {\n  b399()\n}\n")
    codes = {code for code, _, _ in _codes(path)}
    assert codes == {"E104"}


def test_a_huge_unrolled_pipeline_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "huge.pipe"
    path.write_text("pipeline p {\n  repeat 100000000 { " + GEN + " }\n}\n")
    assert _codes(path) == [("E107", 2, 10)]
    path.write_text("pipeline p {\n  repeat int(0, 1000000000) { " + GEN + " }\n}\n")
    assert _codes(path) == [("E107", 2, 10)]


def test_doubling_blocks_hit_the_node_limit(tmp_path: Path) -> None:
    text = "block b0() {\n  " + GEN + "\n  " + GEN + "\n}\n"
    text += "".join(f"block b{i}() {{\n  b{i - 1}()\n  b{i - 1}()\n}}\n" for i in range(1, 40))
    path = tmp_path / "double.pipe"
    path.write_text(text + "pipeline p {\n  b39()\n}\n")
    assert {code for code, _, _ in _codes(path, SourceLimits(max_nodes=500))} == {"E107"}


def test_python_built_deep_values_are_refused_too() -> None:
    value: ast.Value = ast.Str("m")
    for _ in range(3000):
        value = ast.ListValue((value,))
    call = ast.Call(ast.Name("generate"), (ast.Arg(ast.Name("models"), value),))
    file = ast.File((ast.PipelineDef(ast.Name("p"), (ast.LayerStmt(call),)),))
    assert nesting_problem(file, SourceLimits()) is not None
    with pytest.raises(DiagnosticError) as caught:
        compile_ast(file)
    assert caught.value.diagnostics[0].code == "E104"


def test_printer_refuses_statements_it_cannot_print() -> None:
    text = (
        "pipeline p {"
        + " repeat 1 {" * (MAX_STATEMENT_DEPTH + 10)
        + " x() "
        + "}" * (MAX_STATEMENT_DEPTH + 10)
        + " }"
    )
    with pytest.raises(DiagnosticError) as caught:
        format_source(text)
    assert caught.value.diagnostics[0].code == "E104"
    with pytest.raises(ValueError):
        print_file(parse(text))


def test_long_string_terminal_cannot_backtrack() -> None:
    # The terminal is an unrolled loop: no alternation of single characters inside a star.
    (long_string,) = re.findall(r"^LONG_STRING[^:]*:\s*(.*)$", grammar_text(), re.MULTILINE)
    assert "(.|\\n)" not in long_string
    body = 'a "quote" and ""two"" ' * 40_000  # ~1 MB with many quotes
    file = parse('prompts {\n  p = """' + body + '"""\n}\n')
    (prompts,) = file.items
    assert isinstance(prompts, ast.PromptsBlock)
    value = prompts.entries[0].value
    assert isinstance(value, ast.Str) and value.value == body


def test_long_string_edge_cases_keep_their_meaning() -> None:
    for inner in ["", 'a"b', 'a""b', '\n"\n""\n', "\\n"]:
        (prompts,) = parse('prompts { p = """' + inner + '""" }').items
        assert isinstance(prompts, ast.PromptsBlock)
        assert prompts.entries[0].value == ast.Str(inner)
    with pytest.raises(DiagnosticError) as caught:
        parse('prompts { p = """never closed\n' + "x" * 100_000 + "\n}")
    assert caught.value.diagnostics[0].code == "E105"


@pytest.mark.parametrize(
    ("variable", "value", "code"),
    [
        ("ARCHON_MAX_PIPE_BYTES", "50", 1),
        ("ARCHON_MAX_PIPE_DEPTH", "2", 1),
        ("ARCHON_MAX_PIPE_BYTES", "lots", 2),
    ],
)
def test_cli_reads_the_limits_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, code: int
) -> None:
    path = tmp_path / "p.pipe"
    path.write_text("pipeline p {\n  repeat 1 { " + GEN + " }\n}\n")
    monkeypatch.setenv(variable, value)
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("command", ["check", "fmt", "graph"])
def test_cli_commands_report_deep_files(tmp_path: Path, command: str) -> None:
    path = tmp_path / "deep.pipe"
    path.write_text(_nested_repeats(500))
    before = path.read_bytes()
    result = CliRunner().invoke(app, [command, str(path)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "E104" in result.stderr
    assert path.read_bytes() == before


def test_fmt_never_rewrites_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.pipe"
    data = 'prompts { p = "caf\xe9" }\npipeline p { x() }\n'.encode("latin-1")
    path.write_bytes(data)
    result = CliRunner().invoke(app, ["fmt", str(path)])
    assert result.exit_code == 1 and "E100" in result.stderr
    assert path.read_bytes() == data
