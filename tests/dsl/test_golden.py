"""Golden tests: every ``cases/ok/*.pipe`` compiles to its ``.ir.json``; every
``cases/err/*.pipe`` renders exactly its ``.err.txt`` (as ``archon check`` prints it).

``pytest --update-goldens`` rewrites the expected files; review the diff like code. The table
``ERRORS`` pins each error case's diagnostics (code, line, column) independently of the
goldens, so regenerating them cannot silently move a caret or change a code.

Helper files (imported libraries, prompt files) live in ``lib/`` or next to the cases and are
not cases themselves; only top-level ``*.pipe`` files are.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archon.cli import app
from archon.compiler import CompileResult, check_file
from archon.errors import render_all
from archon.ir import strip_spans

CASES = Path(__file__).parent / "cases"
OK_DIR = CASES / "ok"
ERR_DIR = CASES / "err"


def _names(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.glob("*.pipe"))


OK_CASES = _names(OK_DIR)
ERR_CASES = _names(ERR_DIR)

Position = tuple[str, int | None, int | None]

# file -> (code, line, column) of each diagnostic, in the order they are reported.
# Checked by reading each case: the column is where the caret must start.
ERRORS: dict[str, list[Position]] = {
    "block_default_invalid.pipe": [("E302", 1, 28)],
    "block_missing_argument.pipe": [("E210", 7, 3)],
    "block_recursion.pipe": [("E212", 3, 3)],
    "block_unknown_argument.pipe": [("E209", 7, 40)],
    "block_unknown_kind_inside.pipe": [("E203", 2, 3)],
    "budget_entry_twice.pipe": [("E311", 2, 25)],
    "budget_fractional_calls.pipe": [("E312", 2, 22)],
    "budget_impossible.pipe": [("E314", 2, 3)],
    "budget_inside_repeat.pipe": [("E310", 4, 5)],
    "budget_not_positive.pipe": [("E312", 2, 21)],
    "budget_twice.pipe": [("E310", 4, 3)],
    "budget_unknown_entry.pipe": [("E311", 2, 12)],
    "file_empty.pipe": [("E218", 1, 1)],
    "file_import_cycle.pipe": [("E501", 2, 1)],
    "file_imported_error_in_use.pipe": [("E302", 5, 47)],
    "file_invalid_utf8.pipe": [("E100", 2, 26)],
    "file_missing_import.pipe": [("E502", 1, 8)],
    "file_missing_prompt.pipe": [("E503", 1, 24)],
    "file_only_comments.pipe": [("E218", 1, 1)],
    "file_prompt_not_utf8.pipe": [("E503", 2, 59)],
    "graph_empty_pipeline.pipe": [("E409", 1, 10)],
    "graph_ends_in_tests.pipe": [("W401", 4, 3), ("E406", 5, 3)],
    "graph_explicit_inputs_missing_tests.pipe": [("W401", 5, 3), ("E405", 6, 3)],
    "graph_missing_tests_input.pipe": [("E402", 5, 3)],
    "graph_no_candidates_yet.pipe": [("E402", 4, 3)],
    "graph_optional_generate.pipe": [("E408", 4, 3)],
    "graph_ports_mismatch.pipe": [("E404", 6, 30)],
    "graph_repeat_may_remove_generate.pipe": [("E408", 4, 22), ("W401", 4, 22)],
    "import_error_in_library.pipe": [("E102", 3, 27)],
    "name_argument_twice.pipe": [("E208", 2, 58)],
    "name_bare_model_string.pipe": [("E201", 2, 22)],
    "name_definition_is_a_kind.pipe": [("E207", 1, 7)],
    "name_duplicate_definition.pipe": [("E207", 2, 11)],
    "name_duplicate_label.pipe": [("E204", 5, 3)],
    "name_forward_reference.pipe": [("E401", 5, 22)],
    "name_hole_unknown_argument.pipe": [("E309", 2, 65)],
    "name_label_with_dot.pipe": [("E205", 2, 3)],
    "name_missing_parameter.pipe": [("E221", 3, 3)],
    "name_model_call_outside_models.pipe": [("E214", 2, 22)],
    "name_node_used_as_value.pipe": [("E201", 5, 17)],
    "name_positional_argument.pipe": [("E206", 2, 12)],
    "name_self_input.pipe": [("E401", 5, 29)],
    "name_several_pipelines.pipe": [("E217", 2, 10)],
    "name_unknown_alias.pipe": [("E201", 4, 22)],
    "name_unknown_input.pipe": [("E401", 5, 22)],
    "name_unknown_param.pipe": [("E220", 5, 19)],
    "name_unknown_value_function.pipe": [("E202", 2, 55)],
    "repeat_body_error_once.pipe": [("E203", 5, 5)],
    "syntax_alias_without_equals.pipe": [("E102", 2, 9)],
    "syntax_arrow_without_names.pipe": [("E102", 4, 1)],
    "syntax_budget_equals.pipe": [("E102", 2, 18)],
    "syntax_budget_greater.pipe": [("E101", 2, 18)],
    "syntax_eof_in_list.pipe": [("E103", 3, 1)],
    "syntax_layer_at_top_level.pipe": [("E102", 2, 1)],
    "syntax_layer_without_call.pipe": [("E102", 3, 1)],
    "syntax_missing_comma.pipe": [("E102", 2, 44)],
    "syntax_missing_comma_in_list.pipe": [("E102", 2, 43)],
    "syntax_missing_value.pipe": [("E102", 2, 21)],
    "syntax_pipeline_without_name.pipe": [("E102", 1, 10)],
    "syntax_single_quotes.pipe": [("E101", 2, 22)],
    "syntax_stray_closing_paren.pipe": [("E102", 2, 44)],
    "syntax_unclosed_brace.pipe": [("E103", 4, 1)],
    "syntax_unexpected_char.pipe": [("E101", 2, 45)],
    "syntax_unterminated_long_string.pipe": [("E105", 2, 11)],
    "syntax_unterminated_string.pipe": [("E105", 2, 22)],
    "value_number_too_large.pipe": [("E315", 2, 42)],
    "unknown_kind.pipe": [("E203", 4, 3)],
    "value_bool_for_int.pipe": [("E302", 2, 55)],
    "value_choice_option_invalid.pipe": [("E302", 5, 26)],
    "value_default_outside_range.pipe": [("E308", 2, 55)],
    "value_empty_choice.pipe": [("E301", 2, 55)],
    "value_file_needs_path.pipe": [("E215", 2, 54)],
    "value_hole_inside_list.pipe": [("E303", 7, 25)],
    "value_hole_option_out_of_range.pipe": [("E302", 2, 59)],
    "value_int_bounds_reversed.pipe": [("E308", 2, 55)],
    "value_int_with_float_bound.pipe": [("E308", 2, 62)],
    "value_log_nonpositive_low.pipe": [("E308", 2, 59)],
    "value_model_alias_number.pipe": [("E213", 1, 18)],
    "value_model_literal_api_key.pipe": [("E316", 2, 39)],
    "value_models_not_a_list.pipe": [("E302", 2, 21)],
    "value_out_of_range.pipe": [("E302", 5, 27)],
    "value_prompt_not_string.pipe": [("E213", 1, 19)],
    "value_range_one_bound.pipe": [("E308", 2, 55)],
    "value_repeat_float.pipe": [("E313", 3, 10)],
    "value_repeat_float_range.pipe": [("E313", 3, 10)],
    "value_repeat_negative.pipe": [("E313", 3, 10)],
    "value_several_errors.pipe": [
        ("E302", 4, 36),
        ("E302", 4, 53),
        ("E302", 5, 27),
        ("E302", 5, 38),
    ],
    "value_step_not_positive.pipe": [("E308", 2, 55)],
    "value_wrong_type.pipe": [("E302", 2, 55)],
}


def _compile(directory: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> CompileResult:
    """Compile a case from inside its directory, so paths print as a user would see them."""
    monkeypatch.chdir(directory)
    return check_file(name)


def _rendered(result: CompileResult) -> str:
    return render_all(result.diagnostics, result.sources) + "\n"


def _ir(result: CompileResult) -> str:
    assert result.pipeline is not None
    return json.dumps(strip_spans(result.pipeline), indent=2, sort_keys=True) + "\n"


def _compare(expected: Path, actual: str, config: pytest.Config) -> None:
    if config.getoption("--update-goldens"):
        expected.write_text(actual, encoding="utf-8")
        return
    assert expected.exists(), f"{expected.name} is missing: run pytest --update-goldens"
    assert actual == expected.read_text(encoding="utf-8"), (
        f"{expected.name} differs; if the change is intended run pytest --update-goldens"
        " and review the diff"
    )


def _positions(result: CompileResult) -> list[Position]:
    return [
        (d.code, d.span.line if d.span else None, d.span.col if d.span else None)
        for d in result.diagnostics
    ]


def test_there_are_enough_cases() -> None:
    assert len(OK_CASES) >= 12
    assert len(ERR_CASES) >= 45


def test_every_error_case_is_in_the_table() -> None:
    assert sorted(ERRORS) == ERR_CASES


def test_every_case_has_a_golden() -> None:
    missing = [n for n in OK_CASES if not (OK_DIR / n).with_suffix(".ir.json").exists()]
    missing += [n for n in ERR_CASES if not (ERR_DIR / n).with_suffix(".err.txt").exists()]
    stale = [
        p.name
        for directory, suffix in ((OK_DIR, ".ir.json"), (ERR_DIR, ".err.txt"))
        for p in directory.glob(f"*{suffix}")
        if not p.with_name(p.name.removesuffix(suffix) + ".pipe").exists()
    ]
    assert missing == [] and stale == []


@pytest.mark.parametrize("name", OK_CASES)
def test_ok_case(
    name: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    result = _compile(OK_DIR, name, monkeypatch)
    assert result.diagnostics == (), _rendered(result)
    _compare((OK_DIR / name).with_suffix(".ir.json"), _ir(result), request.config)


@pytest.mark.parametrize("name", ERR_CASES)
def test_error_case(
    name: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    result = _compile(ERR_DIR, name, monkeypatch)
    assert result.errors, f"{name} compiled without errors"
    assert result.pipeline is None
    _compare((ERR_DIR / name).with_suffix(".err.txt"), _rendered(result), request.config)
    assert _positions(result) == ERRORS[name], _rendered(result)


def test_error_cases_cover_many_codes() -> None:
    codes = {code for positions in ERRORS.values() for code, _, _ in positions}
    families = {code[:2] for code in codes}
    assert len(codes) >= 30
    assert {"E1", "E2", "E3", "E4", "E5"} <= families


@pytest.mark.parametrize("name", ["unknown_kind.pipe", "import_error_in_library.pipe"])
def test_cli_prints_the_golden(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The goldens are what ``archon check`` writes to stderr (exit code 1)."""
    monkeypatch.chdir(ERR_DIR)
    result = CliRunner().invoke(app, ["check", name])
    assert result.exit_code == 1
    assert result.stderr == (ERR_DIR / name).with_suffix(".err.txt").read_text(encoding="utf-8")
