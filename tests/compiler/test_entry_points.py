"""compile_file, compile_source and compile_ast share one contract; check_file never raises."""

from __future__ import annotations

from pathlib import Path

import pytest

import archon
from archon.dsl.parser import parse
from archon.errors import DiagnosticError
from archon.ir import Pipeline

TEXT = """pipeline p {
  gen = generate(models = ["m"], samples = 2)
  unused = generate(models = ["n"])
  rank(model = "m", top_k = 1) <- gen
}
"""


def test_the_three_entry_points_return_the_same_pipeline(tmp_path: Path) -> None:
    path = tmp_path / "p.pipe"
    path.write_text(TEXT, encoding="utf-8")
    results = [
        archon.compile_file(path),
        archon.compile_source(TEXT, str(path)),
        archon.compile_ast(parse(TEXT, str(path)), base_dir=tmp_path),
    ]
    assert all(isinstance(result, Pipeline) for result in results)
    assert len({result.fingerprint() for result in results}) == 1


def test_errors_raise_and_check_file_reports_instead(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pipe"
    bad.write_text(TEXT.replace("top_k", "topk"), encoding="utf-8")
    for compile_it in (
        lambda: archon.compile_file(bad),
        lambda: archon.compile_source(bad.read_text(), str(bad)),
        lambda: archon.compile_ast(parse(bad.read_text(), str(bad))),
    ):
        with pytest.raises(DiagnosticError) as raised:
            compile_it()
        assert any("topk" in d.message for d in raised.value.diagnostics if d.is_error)
    report = archon.check_file(bad)
    assert report.pipeline is None and len(report.errors) == 1
    assert "topk" in report.errors[0].message
    good = tmp_path / "good.pipe"
    good.write_text(TEXT, encoding="utf-8")
    warned = archon.check_file(good)
    assert warned.pipeline is not None and [d.code for d in warned.warnings] == ["W401"]


def test_a_file_without_a_pipeline_is_an_error_for_compile_file(tmp_path: Path) -> None:
    library = tmp_path / "models.pipe"
    library.write_text('models { m = "openai/gpt-4o-mini" }\n', encoding="utf-8")
    with pytest.raises(DiagnosticError) as raised:
        archon.compile_file(library)
    assert [d.code for d in raised.value.diagnostics] == ["E218"]
    assert archon.check_file(library).pipeline is None
