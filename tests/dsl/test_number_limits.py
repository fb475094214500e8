"""Integer literals and parameter values have a digit limit: a number of thousands of digits
(or a float that overflows) gives a diagnostic or a one-line usage error, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archon.cli import app
from archon.compiler import check_file
from archon.dsl.limits import MAX_INT_DIGITS, NumberTooLarge, json_numbers
from archon.dsl.parser import parse
from archon.errors import DiagnosticError, render
from archon.interop.archon_config import ArchonConfigError, import_file

HUGE = "9" * 5000
LONG = "1" * (MAX_INT_DIGITS + 1)
PIPE = 'pipeline p {{\n  generate(models = ["local/m"], samples = {})\n}}\n'
CONFIGS = Path(__file__).parents[1] / "interop" / "archon_configs"


@pytest.mark.parametrize("digits", [HUGE, LONG, "-" + HUGE, "1_" * 40 + "1"])
def test_a_long_integer_literal_is_a_diagnostic(digits: str) -> None:
    with pytest.raises(DiagnosticError) as caught:
        parse(PIPE.format(digits), "big.pipe")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "E108"
    assert diagnostic.span is not None
    assert (diagnostic.span.path, diagnostic.span.line, diagnostic.span.col) == ("big.pipe", 2, 44)
    assert f"the limit is {MAX_INT_DIGITS}" in diagnostic.message
    assert diagnostic.hint
    assert render(diagnostic).startswith("big.pipe:2:44: error[E108]:")


def test_integers_up_to_the_limit_are_read() -> None:
    digits = "1" * MAX_INT_DIGITS
    file = parse(PIPE.format(digits))
    assert str(int(digits)) in repr(file)


def test_check_reports_the_long_literal(tmp_path: Path) -> None:
    path = tmp_path / "big.pipe"
    path.write_text(PIPE.format(HUGE))
    assert [d.code for d in check_file(path).errors] == ["E108"]


@pytest.mark.parametrize("number", ["1e999999", "9" * 5000 + ".0", "-1e999"])
def test_floats_that_overflow_are_a_diagnostic(tmp_path: Path, number: str) -> None:
    path = tmp_path / "float.pipe"
    path.write_text(PIPE.format(number).replace("samples", "temperature"))
    assert [d.code for d in check_file(path).errors] == ["E315"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": ' + HUGE + "}", "5,000 digits"),
        ('{"a": ' + LONG + "}", f"the limit is {MAX_INT_DIGITS} digits"),
        ('{"a": 1e99999}', "too large"),
        ('{"a": -1e99999}', "too large"),
        ('{"a": Infinity}', "Infinity"),
        ('{"a": NaN}', "NaN"),
    ],
)
def test_json_numbers_are_bounded(text: str, message: str) -> None:
    with pytest.raises(NumberTooLarge, match=message):
        json_numbers(text)


def test_json_numbers_reads_ordinary_json() -> None:
    assert json_numbers('{"a": [1, 2.5, -3e2, "x"]}') == {"a": [1, 2.5, -300.0, "x"]}


@pytest.mark.parametrize("value", [HUGE, "1e99999"])
def test_a_huge_params_value_is_a_one_line_usage_error(tmp_path: Path, value: str) -> None:
    pipe = tmp_path / "p.pipe"
    pipe.write_text('pipeline p { generate(models = ["local/m"]) }\n')
    params = tmp_path / "params.json"
    params.write_text('{"generate.samples": ' + value + "}")
    result = CliRunner().invoke(
        app, ["run", str(pipe), "-q", "hi", "--params", str(params), "--dry-run"]
    )
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.startswith(f"error: {params}: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def _config_with(tmp_path: Path, value: str) -> Path:
    config = json.loads((CONFIGS / "MoA.json").read_text())
    config["layers"][0][0]["max_tokens"] = "PLACEHOLDER"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config).replace('"PLACEHOLDER"', value))
    return path


@pytest.mark.parametrize("value", [HUGE, "1e99999"])
def test_a_huge_number_in_an_archon_config_is_a_config_error(tmp_path: Path, value: str) -> None:
    path = _config_with(tmp_path, value)
    with pytest.raises(ArchonConfigError, match="too"):
        import_file(path)
    result = CliRunner().invoke(app, ["import-archon", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {path}: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
