"""Every Python block of docs/eval.md runs (offline, on the ScriptedClient)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "eval.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)


def test_docs_have_examples() -> None:
    assert len(BLOCKS) >= 4


def test_docs_examples_run_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the examples use paths relative to the repository
    namespace: dict[str, object] = {"__name__": "docs_example"}
    for code in BLOCKS:
        exec(compile(code, str(DOCS), "exec"), namespace)
    assert os.getcwd() == str(ROOT)
