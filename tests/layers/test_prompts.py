"""Prompt rendering is plain, single-pass substitution."""

from __future__ import annotations

from archon.layers.prompts import number_candidates, render
from archon.values import Candidate


def test_render_substitutes_known_placeholders_once() -> None:
    out = render(
        "{query} | {candidates} | {unknown} | {0.__class__}", query="{candidates}", candidates="C"
    )
    assert out == "{candidates} | C | {unknown} | {0.__class__}"


def test_number_candidates_with_critiques() -> None:
    text = number_candidates(
        [Candidate(text="a"), Candidate(text="b", critique="weak")], critiques=True
    )
    assert text.startswith("[1] a") and "[2] b" in text and "weak" in text
