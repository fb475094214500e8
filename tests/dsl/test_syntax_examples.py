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


# Labels are matched on the LALR state and token, not the whole stack, so they must fire
# wherever the mistake sits in a file.
SURROUNDED = [pytest.param(label, snippet, id=snippet) for label, snippet in CASES]


@pytest.mark.parametrize(("label", "snippet"), SURROUNDED)
def test_label_survives_surrounding_lines(label: str, snippet: str) -> None:
    """The message depends on the parser state, not on where the snippet sits in a file."""
    with pytest.raises(DiagnosticError) as info:
        parse('# leading comment\nimport "lib.pipe"\n\n' + snippet, "example.pipe")
    assert [d.message for d in info.value.diagnostics] == [label]
