"""The grammar cache lives only in a private directory of the current user, and is used only
for the grammar it was written for."""

from __future__ import annotations

import getpass
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from archon.dsl import ast, parser
from archon.dsl._lark_cache import grammar_cache_path
from archon.errors import DiagnosticError

pytestmark = pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")


def test_a_private_directory_is_created_and_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    path = grammar_cache_path()
    assert isinstance(path, str)
    directory = Path(path).parent
    assert directory == tmp_path / f"archon-{getpass.getuser()}"
    assert directory.stat().st_mode & 0o777 == 0o700


def test_a_directory_others_can_write_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    shared = tmp_path / f"archon-{getpass.getuser()}"
    shared.mkdir()
    shared.chmod(0o777)
    assert grammar_cache_path() is False
    shared.rmdir()
    shared.symlink_to(tmp_path)  # a link planted in the temp directory
    assert grammar_cache_path() is False


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The shared parser rebuilt around a cache file in ``tmp_path``; rebuilt again after."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    _forget_parser()
    yield tmp_path / f"archon-{getpass.getuser()}" / "pipe-grammar.lark-cache"
    _forget_parser()  # the next user builds it from the real grammar and cache path


def _forget_parser() -> None:
    parser.lark_parser.cache_clear()
    parser._example_labels.cache_clear()  # its LALR states belong to one parser instance


def test_the_tables_are_read_back_from_the_cache(private_cache: Path) -> None:
    text = "pipeline p { optional g = x(a = [1]) <- h }"
    fresh = parser.parse(text)
    written = private_cache.stat().st_mtime_ns
    _forget_parser()
    cached = parser.parse(text)
    assert private_cache.stat().st_mtime_ns == written  # read, not analysed and written anew
    assert repr(cached) == repr(fresh)  # the same tree, spans included


def test_a_changed_grammar_is_analysed_anew(
    private_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grammar = parser.grammar_text()
    monkeypatch.setattr(parser, "grammar_text", lambda: grammar.replace('"repeat"', '"again"', 1))
    assert parser.parse("pipeline p { again 2 { x() } }")
    assert private_cache.exists()
    _forget_parser()
    monkeypatch.setattr(parser, "grammar_text", lambda: grammar)
    with pytest.raises(DiagnosticError):
        parser.parse("pipeline p { again 2 { x() } }")
    (repeat,) = parser.parse("pipeline p { repeat 2 { x() } }").pipelines()[0].body
    assert isinstance(repeat, ast.RepeatStmt)
