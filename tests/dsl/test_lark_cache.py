"""The grammar cache lives only in a private directory of the current user."""

from __future__ import annotations

import getpass
import os
import tempfile
from pathlib import Path

import pytest

from archon.dsl._lark_cache import grammar_cache_path

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
