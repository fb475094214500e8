"""Shared helpers of the language-server tests (skipped without the `lsp` extra)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from lsp_helpers import EXAMPLES


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A copy of examples/ (the .pipe files, lib/ and prompts/) to break freely."""
    target = tmp_path / "examples"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns("data", "*.json"))
    return target
