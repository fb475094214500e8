"""Every labelled snippet in SYNTAX_EXAMPLES produces its own label as the diagnostic message."""

from __future__ import annotations

import pytest

from archon.dsl.parser import parse
from archon.dsl.syntax_examples import SYNTAX_EXAMPLES
from archon.errors import DiagnosticError

CASES = [(label, snippet) for label, snippets in SYNTAX_EXAMPLES.items() for snippet in snippets]


def test_the_table_is_not_empty() -> None:
    assert CASES
    assert all(snippets for snippets in SYNTAX_EXAMPLES.values())


@pytest.mark.parametrize(("label", "snippet"), CASES, ids=[s for _, s in CASES])
def test_snippet_produces_its_own_label(label: str, snippet: str) -> None:
    with pytest.raises(DiagnosticError) as info:
        parse(snippet, "example.pipe")
    messages = [d.message for d in info.value.diagnostics]
    assert messages == [label]


# Parser bug (reported): lark's match_examples compares whole ParserStates, stack depth
# included, so a label only fires when the error sits as deep in the parse stack as in its
# snippet, i.e. in the first top-level item. Matching on ``state.position`` would fix it; then
# these cases XPASS and this mark should go.
_DEPTH_BUG = pytest.mark.xfail(strict=True, reason="syntax labels depend on parse-stack depth")
_UNAFFECTED = {"pipeline p { generate }"}
SURROUNDED = [
    pytest.param(label, snippet, id=snippet, marks=() if snippet in _UNAFFECTED else _DEPTH_BUG)
    for label, snippet in CASES
]


@pytest.mark.parametrize(("label", "snippet"), SURROUNDED)
def test_label_survives_surrounding_lines(label: str, snippet: str) -> None:
    """The message depends on the parser state, not on where the snippet sits in a file."""
    with pytest.raises(DiagnosticError) as info:
        parse('# leading comment\nimport "lib.pipe"\n\n' + snippet, "example.pipe")
    assert [d.message for d in info.value.diagnostics] == [label]
