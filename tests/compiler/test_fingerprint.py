"""``Pipeline.fingerprint()``: stable across formatting and comments, sensitive to meaning."""

from __future__ import annotations

from .helpers import compile_ok

BASE = """models { m = "openai/gpt-4o-mini" }
pipeline p {
  generate(models = [m], samples = 3)
  rank(model = m, top_k = int(1, 3))
}
"""

REFORMATTED = """# A comment that changes nothing.
models {
    m = "openai/gpt-4o-mini"   # the judge
}


pipeline p
{
    generate(  models = [ m , ],
               samples = 3, )  # three drafts
    rank(model=m,top_k=int(1,3))
}
"""


def fingerprint(text: str) -> str:
    return compile_ok(text).fingerprint()


def test_fingerprint_is_a_sha256_hex_digest() -> None:
    value = fingerprint(BASE)
    assert len(value) == 64 and int(value, 16) >= 0


def test_fingerprint_ignores_whitespace_and_comments() -> None:
    assert fingerprint(REFORMATTED) == fingerprint(BASE)
    # The spans really differ, so the equality is not an accident of identical positions.
    assert compile_ok(REFORMATTED).nodes[0].span != compile_ok(BASE).nodes[0].span


def test_fingerprint_changes_with_a_parameter() -> None:
    assert fingerprint(BASE.replace("samples = 3", "samples = 4")) != fingerprint(BASE)
    assert fingerprint(BASE.replace("int(1, 3)", "int(1, 4)")) != fingerprint(BASE)


def test_fingerprint_changes_with_a_model_a_label_or_the_budget() -> None:
    others = [
        BASE.replace("gpt-4o-mini", "gpt-4o"),
        BASE.replace("  rank(", "  best = rank("),
        BASE.replace("pipeline p {", "pipeline p {\n  budget { calls <= 10 }"),
    ]
    prints = {fingerprint(text) for text in others}
    assert len(prints) == 3 and fingerprint(BASE) not in prints
