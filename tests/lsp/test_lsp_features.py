"""Hover, completion, definition, symbols, formatting and diagnostics as pure functions of a
document's text and a cursor (no protocol)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsp_helpers import cursor

pytest.importorskip("lsprotocol")

from lsprotocol import types

from archon.compiler import check_file
from archon.layers import default_registry
from archon.lsp.analysis import Analysis, analyze
from archon.lsp.completion import complete_at
from archon.lsp.definition import definition_at
from archon.lsp.diagnostics import to_lsp
from archon.lsp.formatting import format_edits
from archon.lsp.hover import hover_at
from archon.lsp.symbols import document_symbols

REGISTRY = default_registry()


def _analysis(path: Path, text: str | None = None) -> Analysis:
    return analyze(path.read_text() if text is None else text, str(path), REGISTRY)


def _at(text: str, needle: str, shift: int = 1) -> int:
    """The offset ``shift`` characters into the first ``needle`` outside comments."""
    for line_start, line in _lines(text):
        column = line.split("#")[0].find(needle)
        if column != -1:
            return line_start + column + shift
    raise AssertionError(needle)


def _lines(text: str) -> list[tuple[int, str]]:
    found, start = [], 0
    for line in text.splitlines(keepends=True):
        found.append((start, line))
        start += len(line)
    return found


# --- diagnostics ----------------------------------------------------------------------------


def test_examples_have_the_diagnostics_of_archon_check(workspace: Path) -> None:
    for path in sorted(workspace.glob("*.pipe")):
        analysis = _analysis(path)
        expected = check_file(path, REGISTRY).diagnostics
        if len(analysis.file.pipelines() if analysis.file else ()) <= 1:
            assert analysis.result.diagnostics == expected, path.name
        assert not analysis.result.errors, path.name


def test_a_misspelt_parameter_keeps_code_range_and_hint(workspace: Path) -> None:
    path = workspace / "mixture_of_agents.pipe"
    text = path.read_text().replace("samples = 2", "sample = 2")
    path.write_text(text)
    published = to_lsp(_analysis(path, text))
    expected = check_file(path, REGISTRY).diagnostics
    assert [d.code for d in published] == [d.code for d in expected] != []
    first, want = published[0], expected[0]
    assert want.span is not None and want.hint is not None
    assert first.range.start == types.Position(line=want.span.line - 1, character=want.span.col - 1)
    assert first.range.end.character == want.span.end_col - 1
    assert first.severity == types.DiagnosticSeverity.Error and first.source == "archon"
    assert want.message in first.message and f"help: {want.hint}" in first.message


def test_a_syntax_error_is_reported_at_its_place(workspace: Path) -> None:
    path = workspace / "baseline.pipe"
    text = path.read_text().replace("generate(", "generate(,", 1)
    analysis = _analysis(path, text)
    assert not analysis.ok
    published = to_lsp(analysis)
    assert published and published[0].code.startswith("E1")  # type: ignore[union-attr]
    line = text.splitlines()[published[0].range.start.line]
    assert "generate(," in line


def test_a_problem_in_an_import_is_marked_on_the_import_line(workspace: Path) -> None:
    library = workspace / "lib" / "models.pipe"
    library.write_text(library.read_text().replace("small =", "small ="[:-1] + "= =", 1))
    path = workspace / "mixture_of_agents.pipe"
    text = path.read_text()
    published = to_lsp(_analysis(path, text))
    on_import = [d for d in published if d.message.startswith("in ")]
    assert on_import, published
    import_line = text.splitlines().index('import "lib/models.pipe"')
    assert {d.range.start.line for d in on_import} == {import_line}
    related = on_import[0].related_information
    assert related and related[0].location.uri.endswith("lib/models.pipe")


def test_several_pipelines_are_each_checked(tmp_path: Path) -> None:
    path = tmp_path / "two.pipe"
    text = (
        'pipeline a {\n  generate(models = ["local/x"])\n}\n'
        'pipeline b {\n  rank(modle = "local/x")\n}\n'
    )
    codes = [d.code for d in _analysis(path, text).result.diagnostics]
    assert "E217" not in codes and codes  # b's misspelt parameter is found


# --- hover ----------------------------------------------------------------------------------


def test_hover_kind_param_alias_prompt_and_node() -> None:
    path = Path("examples/math_best.pipe").resolve()
    text = path.read_text()
    analysis = _analysis(path)

    def hover(needle: str, shift: int = 1) -> str:
        found = hover_at(text, _at(text, needle, shift), analysis, REGISTRY)
        assert found is not None, needle
        return found.markdown

    kind = hover("repair(")
    assert "layer kind" in kind and "| `rounds` |" in kind
    assert "| `model` | `str` | *required* |" in kind
    assert "`samples`: `int` — default `1`" in hover("samples =").replace("**", "`")
    assert "local/qwen2.5-coder-0.5b" in hover("models = [small]", len("models = [s"))
    assert "Do not answer directly" in hover("prompt = program", len("prompt = p"))
    mode = _hover_in_call('rank(model = "m", mode = "score")', "mode =")
    assert '"listwise" | "pairwise" | "score"' in mode and 'default `"listwise"`' in mode


def _hover_in_call(call: str, needle: str) -> str:
    text = f"pipeline p {{\n  {call}\n}}\n"
    found = hover_at(text, text.index(needle) + 1, None, REGISTRY)
    assert found is not None
    return found.markdown


def test_hover_a_node_shows_its_statement() -> None:
    path = Path("examples/code_best.pipe").resolve()
    text = path.read_text()
    found = hover_at(text, _at(text, "<- greedy", 4), _analysis(path), REGISTRY)
    assert found is not None and "greedy = generate(" in found.markdown


# --- completion -----------------------------------------------------------------------------


def _labels(marked: str, path: Path | None = None) -> list[str]:
    path = path or Path("examples/new.pipe").resolve()
    text, offset = cursor(marked)
    head = 'import "lib/models.pipe"\nprompts { ask = "Answer: {query}" }\n'
    analysis = _analysis(path, head + "pipeline p {\n}\n")
    return [item.label for item in complete_at(head + text, len(head) + offset, analysis, REGISTRY)]


def test_completion_of_kinds_params_values_aliases_and_nodes() -> None:
    statement = _labels("pipeline p {\n  |")
    assert {"generate", "rank", "fuse", "optional", "repeat", "budget"} <= set(statement)
    assert _labels("pipeline p {\n  ra|") == ["rank"]
    params = _labels("pipeline p {\n  rank(model = small, |")
    assert "top_k" in params and "mode" in params and "model" not in params
    assert _labels("pipeline p {\n  rank(mode = |")[:3] == ['"listwise"', '"pairwise"', '"score"']
    values = _labels("pipeline p {\n  generate(models = [|")
    assert {"small", "large", "tiny", "ask", "choice"} <= set(values)
    assert "true" in _labels("pipeline p {\n  generate(stop_after_code = |")
    nodes = _labels(
        "pipeline p {\n  a = generate(models = [small])\n  b = fuse(models = [small])\n"
        "  c = rank(model = small) <- |"
    )
    assert nodes == ["a", "b"]
    assert _labels("|")[:2] == ["import", "models"]
    assert "lib/models.pipe" in _labels('import "|')


# --- definition -----------------------------------------------------------------------------


def test_definition_of_import_alias_prompt_block_node_and_kind() -> None:
    examples = Path("examples").resolve()
    general = examples / "archon_general.pipe"
    text = general.read_text()
    analysis = _analysis(general)

    def place(needle: str, shift: int = 1):  # type: ignore[no-untyped-def]
        found = definition_at(text, _at(text, needle, shift), analysis, REGISTRY)
        assert found is not None, needle
        return found

    assert place('"lib/models.pipe"').path == str(examples / "lib" / "models.pipe")
    alias = place("judge = small", len("judge = s"))
    assert alias.path == str(examples / "lib" / "models.pipe") and alias.line == 2
    prompt = place("system_prompt = critic", len("system_prompt = c"))
    assert (prompt.path, prompt.line) == (str(general), 4)
    block = place("critique_rank_fuse(judge = small)")
    assert (block.path, block.line) == (str(general), 7)
    assert place("rank(").path.endswith("archon/layers/rank.py")
    code = examples / "code_best.pipe"
    text = code.read_text()
    node = definition_at(text, _at(text, "<- pool", 4), _analysis(code), REGISTRY)
    assert node is not None and text.splitlines()[node.line][node.col :].startswith("pool =")


# --- symbols and formatting -----------------------------------------------------------------


def test_document_symbols_outline() -> None:
    path = Path("examples/archon_general.pipe").resolve()
    analysis = _analysis(path)
    assert analysis.file is not None
    symbols = document_symbols(analysis.file, analysis.text)
    names = [s.name for s in symbols]
    assert names == ['import "lib/models.pipe"', "prompts", "critique_rank_fuse", "archon_general"]
    pipeline = symbols[-1]
    assert pipeline.kind == types.SymbolKind.Module
    assert [c.name for c in pipeline.children or []] == [
        "budget",
        "generate",
        "critique_rank_fuse",
        "repeat 1",
    ]


def test_formatting_uses_archon_fmt() -> None:
    from archon.dsl.printer import format_source

    text = 'pipeline p{generate(models=["local/x"],samples=2)}\n'
    edits = format_edits(text, "p.pipe")
    assert edits is not None and len(edits) == 1
    assert edits[0].new_text == format_source(text, "p.pipe")
    assert format_edits(edits[0].new_text, "p.pipe") == []
    assert format_edits("pipeline {", "p.pipe") is None
