"""Helpers shared by the language-server tests."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def cursor(marked: str) -> tuple[str, int]:
    """Text with one ``|`` marking the cursor -> (text without it, the cursor's offset)."""
    offset = marked.index("|")
    return marked[:offset] + marked[offset + 1 :], offset
