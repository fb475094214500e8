"""The program-wide byte limit (E109) and modest-size regressions of adversarial shapes."""

from __future__ import annotations

from pathlib import Path

import pytest

from archon.cli.common import source_limits
from archon.compiler import check_file
from archon.dsl.limits import SourceLimits
from archon.dsl.parser import parse
from archon.errors import LINE_WINDOW, MAX_RENDERED_PER_FILE, render, render_all

HEADER = 'models { m = "local/qwen2.5-coder-0.5b" }\n'
PIPE = "pipeline p {\n  generate(models = [m])\n}\n"


def _project(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "archon.toml").write_text("")
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path / "main.pipe"


def _codes(path: Path, limits: SourceLimits | None = None) -> list[str]:
    return [d.code for d in check_file(path, limits=limits).errors]


def _imports(tmp_path: Path) -> tuple[Path, int]:
    lib = "# " + "x" * 400 + "\n"
    main = HEADER + 'import "a.pipe"\nimport "b.pipe"\n' + PIPE
    path = _project(tmp_path, {"a.pipe": lib, "b.pipe": lib, "main.pipe": main})
    return path, len(main) + 2 * len(lib)


def test_imports_just_under_the_total_pass(tmp_path: Path) -> None:
    path, total = _imports(tmp_path)
    assert _codes(path, SourceLimits(max_total_bytes=total)) == []


def test_the_import_that_crosses_the_total_is_reported(tmp_path: Path) -> None:
    path, total = _imports(tmp_path)
    result = check_file(path, limits=SourceLimits(max_total_bytes=total - 1))
    [error] = result.errors
    assert error.code == "E109"
    assert error.span is not None
    assert (error.span.path, error.span.line, error.span.col) == (str(path), 3, 8)
    assert "b.pipe" in error.message
    assert error.hint is not None and "ARCHON_MAX_PIPE_TOTAL_BYTES" in error.hint
    assert render(error, result.sources[str(path)]).startswith(f"{path}:3:8: error[E109]")


def test_a_main_file_over_the_total_is_reported(tmp_path: Path) -> None:
    path = _project(tmp_path, {"main.pipe": HEADER + PIPE})
    [error] = check_file(path, limits=SourceLimits(max_total_bytes=10)).errors
    assert error.code == "E109"


def _prompts(tmp_path: Path) -> tuple[Path, int]:
    text = "Think step by step. " * 20
    main = (
        HEADER
        + 'prompts {\n  a = file("p/a.txt")\n  b = file("p/b.txt")\n  again = file("p/a.txt")\n}\n'
        + "pipeline p { generate(models = [m], prompt = b) }\n"
    )
    path = _project(tmp_path, {"p/a.txt": text, "p/b.txt": text, "main.pipe": main})
    return path, len(main) + 2 * len(text)  # a file read twice counts once


def test_prompt_files_just_under_the_total_pass(tmp_path: Path) -> None:
    path, total = _prompts(tmp_path)
    assert _codes(path, SourceLimits(max_total_bytes=total)) == []


def test_the_prompt_file_that_crosses_the_total_is_reported(tmp_path: Path) -> None:
    path, total = _prompts(tmp_path)
    [error] = check_file(path, limits=SourceLimits(max_total_bytes=total - 1)).errors
    assert error.code == "E109"
    assert error.span is not None
    assert (error.span.line, error.span.col) == (4, 12)  # the "p/b.txt" of file("p/b.txt")
    assert "p/b.txt" in error.message


def test_the_environment_sets_the_total(tmp_path: Path) -> None:
    assert source_limits({}).max_total_bytes == SourceLimits().max_total_bytes
    limits = source_limits({"ARCHON_MAX_PIPE_TOTAL_BYTES": "5_00"})
    assert limits.max_total_bytes == 500
    path, _ = _imports(tmp_path)
    assert set(_codes(path, limits)) == {"E109"}


def test_the_total_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_total_bytes"):
        SourceLimits(max_total_bytes=0)


def test_the_cli_reports_the_total(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from archon.cli import app

    path, total = _imports(tmp_path)
    env = {"ARCHON_MAX_PIPE_TOTAL_BYTES": str(total - 1)}
    result = CliRunner().invoke(app, ["check", str(path)], env=env)
    assert result.exit_code == 1
    assert "E109" in result.output and "Traceback" not in result.output


# --- shapes that cost most before (about 200 KB here; bench/pipe_sizes.py runs 1 MB) ------


def test_a_long_flat_pipeline_parses_to_the_same_spans(tmp_path: Path) -> None:
    layers = "".join("  critique(model = m)\n" for _ in range(5_000))
    text = HEADER + "pipeline p {\n  generate(models = [m])\n" + layers + "}\n"
    file = parse(text, "big.pipe")
    [pipeline] = file.pipelines()
    assert len(pipeline.body) == 5_001
    last = pipeline.body[-1]
    assert (last.span.line, last.span.col, last.span.end_col) == (5_003, 3, 22)
    assert (pipeline.span.line, pipeline.span.end_line) == (2, 5_004)
    path = _project(tmp_path, {"main.pipe": text})
    assert _codes(path) == []


def test_a_long_list_of_numbers_is_a_clean_diagnostic(tmp_path: Path) -> None:
    items = ",".join(str(i) for i in range(15_000))
    text = HEADER + f"pipeline p {{\n  generate(models = [m], stop = [{items}])\n}}\n"
    path = _project(tmp_path, {"main.pipe": text})
    assert _codes(path) == ["E302"]  # one for the list, not one per item


def test_deep_lists_repeated_are_clean_diagnostics(tmp_path: Path) -> None:
    nest = "[" * 60 + "1" + "]" * 60
    lines = "".join(f"  critique(model = m, x = {nest})\n" for _ in range(300))
    text = HEADER + "pipeline p {\n  generate(models = [m])\n" + lines + "}\n"
    path = _project(tmp_path, {"main.pipe": text})
    assert set(_codes(path)) == {"E220"}


def test_a_syntax_error_after_a_long_file(tmp_path: Path) -> None:
    body = "".join(
        f"pipeline p{i} {{ generate(models = [m]) critique(model = m) }}\n" for i in range(3_000)
    )
    path = _project(tmp_path, {"main.pipe": HEADER + body + "pipeline broken {\n"})
    assert _codes(path) == ["E103"]


def test_a_list_of_numbers_is_one_diagnostic_naming_the_first_item_and_the_count(
    tmp_path: Path,
) -> None:
    items = ",".join(str(i) for i in range(3_000)) + ', "ok", true'  # a bad item past the cut
    text = HEADER + f"pipeline p {{\n  generate(models = [m], stop = [{items}])\n}}\n"
    path = _project(tmp_path, {"main.pipe": text})
    [error] = check_file(path).errors
    assert error.message == (
        "generate(): 'stop' item 1 must be a string, not the number 0 (and 3,000 more bad items)"
    )


def test_one_bad_item_in_a_list_reads_as_before(tmp_path: Path) -> None:
    text = HEADER + 'pipeline p {\n  generate(models = [m], stop = ["a", 2, "c"])\n}\n'
    path = _project(tmp_path, {"main.pipe": text})
    [error] = check_file(path).errors
    assert error.message == "generate(): 'stop' item 2 must be a string, not the number 2"


def _long_line(tmp_path: Path, count: int) -> Path:
    layers = "".join(f' critique(model = m, bad_{i} = "not a parameter")' for i in range(count))
    text = HEADER + "pipeline p { generate(models = [m])" + layers + " }\n"
    return _project(tmp_path, {"main.pipe": text})


def test_a_long_line_of_errors_renders_a_bounded_window(tmp_path: Path) -> None:
    path = _long_line(tmp_path, 1_000)  # about 50 KB on one line
    assert path.stat().st_size > 45_000
    result = check_file(path)
    errors = result.errors
    assert len(errors) == 1_000 and {e.code for e in errors} == {"E220"}
    source = result.sources[str(path)]
    for error in errors:
        _, _, shown, caret = render(error, source).splitlines()[:4]
        assert len(shown) <= len("2 | ") + LINE_WINDOW + 2  # the window and two "…"
        # the caret sits under the parameter's name, as it does on a short line
        assert shown[caret.index("^") :].startswith("bad_")
    text = render_all(errors, result.sources)
    assert len(text) < 200_000
    assert text.count("error[E220]") == MAX_RENDERED_PER_FILE
    assert text.endswith(f"… and {1_000 - MAX_RENDERED_PER_FILE} more errors in {path}")
    assert render_all(errors, result.sources, limit=None).count("error[E220]") == 1_000


def test_a_short_line_renders_whole(tmp_path: Path) -> None:
    text = HEADER + "pipeline p {\n  generate(models = [m])\n  critique(model = m, topk = 3)\n}\n"
    path = _project(tmp_path, {"main.pipe": text})
    result = check_file(path)
    [error] = result.errors
    assert render(error, result.sources[str(path)]).splitlines()[1:4] == [
        "  |",
        "4 |   critique(model = m, topk = 3)",
        "  |                       ^^^^",
    ]


def test_the_cli_prints_a_long_line_of_errors_briefly(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from archon.cli import app

    path = _long_line(tmp_path, 1_000)
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.output) < 200_000
    assert f"… and {1_000 - MAX_RENDERED_PER_FILE} more errors" in result.output


def test_bad_items_of_a_short_list_are_one_diagnostic(tmp_path: Path) -> None:
    text = HEADER + 'pipeline p {\n  generate(models = [m], stop = ["a", 2, true, "", 5])\n}\n'
    path = _project(tmp_path, {"main.pipe": text})
    [error] = check_file(path).errors
    assert error.message == (
        "generate(): 'stop' item 2 must be a string, not the number 2 (and 2 more bad items)"
    )
