"""Executable checks the query itself states: doctests, asserts and input/output examples.

Pure text processing, no model and no execution: :func:`extract` reads a coding query and
returns the function it asks for, the self-contained call expressions its examples make
(inputs for execution agreement) and the tests they imply:

* HumanEval docstring examples (``>>> f(x)`` then the expected output, read with the
  standard library's doctest parser: continuation lines and multi-line outputs included) and
  example lines such as ``f(x) == y``, ``f(x) => y``, ``f(x) ➞ y``, ``f(x) returns y``;
* ``assert`` lines (MBPP style);
* ``Input:`` / ``Output:`` example blocks (also ``Sample Input 1``, ``Example 1: Input ...``,
  ``-----Input-----`` headings). For a function task they become calls of that function; for
  a stdin/stdout program they become ``TestCase(kind="io")``.

An expected value is kept only when it is a Python literal (``ast.literal_eval``; JSON's
``true``/``false``/``null`` too): nothing here is ever evaluated. Examples that do not parse,
refer to names the query does not define, or expect printed text are dropped, so malformed
queries yield no test rather than an error.
"""

from __future__ import annotations

import ast
import builtins
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from archon.values import TestCase

if TYPE_CHECKING:  # doctest pulls in unittest and pdb: imported where examples are parsed
    import doctest

__all__ = [
    "QueryExamples",
    "calls_in",
    "entry_point",
    "extract",
    "io_examples",
    "literal_source",
]

SAFE_NAMES = frozenset(
    {"float", "int", "str", "list", "tuple", "set", "dict", "frozenset", "range", "bool"}
    | {"len", "abs", "min", "max", "sum", "sorted", "reversed", "round"}
)
"""Builtins an example's arguments may use and still count as self-contained."""

_DEF = re.compile(r"^\s*(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)
_SEPARATOR = re.compile(
    r"^(?:#\s*)?(?:==>|=>|==|->|➞|→|=|should\s+return|returns?)\s*(?P<rest>.*)$", re.IGNORECASE
)
_LINE_PREFIX = re.compile(r"^(?:[*•-]\s+|for\s+(?=\w+\()|assert\s+)", re.IGNORECASE)
_FOR_THE_OUTPUT = re.compile(
    r"^for\s+(?P<args>\w+\s*=.*?),?\s+the\s+(?:output|result)\s+should\s+be\s+(?P<rest>.+)$",
    re.IGNORECASE,
)
_DECORATION = re.compile(r"^[\s#*>`|-]+|[\s*`|-]+$")
_IO_HEADER = re.compile(
    r"^(?P<label>(?:sample|example)?\s*(?:test\s*)?(?P<kind>input|output))\s*(?:#?\s*\d+)?"
    r"\s*(?::\s*(?P<inline>.*))?$",
    re.IGNORECASE,
)
_OTHER_HEADER = re.compile(
    r"^(?:notes?|explanations?|examples?|constraints|hints?|samples?|sample\s+tests?"
    r"|test\s+cases?|examples?\s*#?\s*\d+|sample\s*#?\s*\d+)\s*:?(?:\s.*)?$",
    re.IGNORECASE,
)
_MARKER = re.compile(r"\b(?:examples?|samples?)\b", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z]{3,}")


@dataclass(frozen=True)
class QueryExamples:
    """What a query states about its own correct answer.

    Attributes:
        entry: the function the query asks for (its last ``def``, else the function its
            asserts call), or None for a stdin/stdout program or a query without one.
        calls: distinct self-contained call expressions of ``entry`` found in its examples.
        tests: code tests (``assert`` statements) and ``io`` tests, all ``origin="query"``.
    """

    entry: str | None
    calls: tuple[str, ...]
    tests: tuple[TestCase, ...]


def extract(query: str) -> QueryExamples:
    """Every check stated in ``query`` (see the module docstring); never raises."""
    entry = entry_point(query)
    asserts = _assert_lines(query)
    calls: list[str] = []
    tests: list[TestCase] = []
    if entry is not None:
        for call, expected in _function_examples(query, entry):
            calls.append(call)
            if expected is not None:
                tests.append(_code_test(_assertion(call, expected)))
        for line in asserts:
            tests.append(_code_test(line))
            calls.extend(calls_in(line, entry))
    else:
        tests.extend(_io_test(stdin, stdout) for stdin, stdout in io_examples(query))
    return QueryExamples(entry, _distinct(calls), _distinct_tests(tests))


def entry_point(query: str) -> str | None:
    """The function the query asks for: its last ``def``, else the one its asserts call."""
    defined = _DEF.findall(query)
    if defined:
        return str(defined[-1])
    called = [name for line in _assert_lines(query) for name in _called_names(line)]
    return max(dict.fromkeys(called), key=called.count) if called else None


def calls_in(source: str, entry: str | None = None) -> list[str]:
    """Self-contained calls of ``entry`` (any non-builtin function when None) in ``source``.

    ``source`` is Python statements: asserts, expressions or assignments, e.g. a test
    ``assert add(1, 2) == 3`` gives ``["add(1, 2)"]``. Only the outermost calls count, and
    calls whose arguments refer to other names (a variable set up earlier, say) are left
    out, since they cannot run on their own. Source that does not parse gives none.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return []
    found: list[str] = []
    for statement in tree.body:
        if isinstance(statement, ast.Assert):
            found.extend(_outer_calls(statement.test, entry))
        elif isinstance(statement, ast.Expr | ast.Assign):
            found.extend(_outer_calls(statement.value, entry))
    return found


def literal_source(text: str) -> str | None:
    """``text`` as canonical Python literal source, or None when it is not a safe literal."""
    text = text.strip()
    if not text:
        return None
    for attempt in (text, text.rstrip(".,;").strip()):
        value = _literal(attempt)
        if value is not _MISSING:
            return _round_trip(value)
    return None


def _round_trip(value: object) -> str | None:
    """``repr(value)`` when it reads back as the same literal (not ``inf``, ``nan``...)."""
    try:
        source = repr(value)
        return source if ast.literal_eval(source) == value else None
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


_MISSING = object()


def _literal(text: str) -> object:
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _MISSING


def _assertion(call: str, expected: str) -> str:
    """``assert call == expected``; a float compares with a small tolerance."""
    value = ast.literal_eval(expected)
    if isinstance(value, float):
        return f"assert abs({call} - {expected}) <= 1e-6 * max(1.0, abs({expected}))"
    return f"assert {call} == {expected}"


def _code_test(text: str) -> TestCase:
    return TestCase(text=text, kind="code", origin="query")


def _io_test(stdin: str, stdout: str) -> TestCase:
    text = f"stdin:\n{stdin}\nexpected stdout:\n{stdout}"
    return TestCase(text=text, kind="io", stdin=stdin, stdout=stdout, origin="query")


# ------------------------------------------------------------------ function examples


def _function_examples(query: str, entry: str) -> Iterator[tuple[str, str | None]]:
    """(call, expected literal or None) from doctests, example lines and Input/Output."""
    yield from _doctest_examples(query, entry)
    yield from _example_lines(query, entry)
    for given, wanted in io_examples(query):
        call = _call_of(entry, " ".join(given.split()), _parameters(query, entry))
        if call is not None:
            yield call, literal_source(wanted)


def _doctest_examples(query: str, entry: str) -> Iterator[tuple[str, str | None]]:
    for example in _doctests(query):
        source = example.source.strip()
        expression = _expression(source)
        if expression is None or not _self_contained(expression, entry):
            continue
        if not any(_calls_entry(node, entry) for node in ast.walk(expression)):
            continue
        want = _before_docstring_end(example.want)
        if want.strip():
            yield ast.unparse(expression), literal_source(want)
        else:  # `>>> f(x) == y` states its own check; a bare `>>> f(x)` is only an input
            yield _split_comparison(expression, entry) or (ast.unparse(expression), None)


def _doctests(query: str) -> Iterator[doctest.Example]:
    """Every ``>>>`` example of ``query``, each parsed on its own.

    Parsing the whole text at once loses every example as soon as one of them is malformed:
    the standard parser raises for the whole string, and a prompt in a Markdown fence (a
    fence that closes at column 0 right after the docstring) is enough to make it raise.
    """
    import doctest

    parser = doctest.DocTestParser()
    for block in _doctest_blocks(query.splitlines()):
        try:
            yield from parser.get_examples(block)
        except ValueError:  # inconsistent indentation and the like: skip this example only
            continue


def _doctest_blocks(lines: Sequence[str]) -> Iterator[str]:
    """Each ``>>>`` line with the lines that belong to it: at its indentation or deeper, up
    to a blank line, the next ``>>>`` line or a Markdown fence."""
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        stripped = line.lstrip()
        if not stripped.startswith(">>>"):
            continue
        indent = line[: len(line) - len(stripped)]
        block = [line]
        while index < len(lines) and _continues_example(lines[index], indent):
            block.append(lines[index])
            index += 1
        yield "\n".join(block)


def _continues_example(line: str, indent: str) -> bool:
    stripped = line.strip()
    if not stripped or stripped.startswith((">>>", "```", "~~~")):
        return False
    return line.startswith(indent)


def _split_comparison(expression: ast.expr, entry: str) -> tuple[str, str | None] | None:
    """``f(x) == <literal>`` as (``f(x)``, literal), or None for any other expression."""
    if not (isinstance(expression, ast.Compare) and len(expression.ops) == 1):
        return None
    if not isinstance(expression.ops[0], ast.Eq) or not _calls_entry(expression.left, entry):
        return None
    expected = literal_source(ast.unparse(expression.comparators[0]))
    return (ast.unparse(expression.left), expected) if expected is not None else None


def _before_docstring_end(want: str) -> str:
    """The expected output up to the line closing the docstring (doctest keeps it)."""
    kept: list[str] = []
    for line in want.splitlines():
        if line.strip().startswith(('"""', "'''")):
            break
        kept.append(line)
    return "\n".join(kept)


def _example_lines(query: str, entry: str) -> Iterator[tuple[str, str | None]]:
    """``f(x) == y``, ``f(x) => y``, ``f(x) # returns y`` lines outside doctests."""
    asserts = set(_assert_lines(query))  # real Python asserts are read as they are
    for raw in query.splitlines():
        if raw.strip() in asserts:
            continue
        line = _LINE_PREFIX.sub("", raw.strip())
        stated = _FOR_THE_OUTPUT.match(line)
        if stated is not None:
            call = _call_of(entry, stated.group("args"), _parameters(query, entry))
            if call is not None:
                yield call, _expected_text(stated.group("rest"))
            continue
        if not line.startswith(entry + "("):
            continue
        end = _closing_paren(line, len(entry))
        if end is None:
            continue
        expression = _expression(line[: end + 1])
        separator = _SEPARATOR.match(line[end + 1 :].strip())
        if expression is None or separator is None or not _self_contained(expression, entry):
            continue
        expected = _expected_text(separator.group("rest"))
        yield ast.unparse(expression), expected


def _expected_text(rest: str) -> str | None:
    """The literal at the start of ``rest``: whole, or before a ``#`` comment."""
    found = literal_source(rest)
    if found is not None:
        return found
    cut = rest.rfind("#")
    while cut > 0:
        found = literal_source(rest[:cut])
        if found is not None:
            return found
        cut = rest.rfind("#", 0, cut)
    return None


def _closing_paren(line: str, start: int) -> int | None:
    """Index of the parenthesis closing the one at ``start`` (quotes respected)."""
    depth, quote, escaped = 0, "", False
    for index in range(start, len(line)):
        char = line[index]
        if quote:
            escaped = char == "\\" and not escaped
            if char == quote and not escaped:
                quote = ""
            continue
        if char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return index
    return None


def _call_of(entry: str, arguments: str, parameters: Sequence[str] | None) -> str | None:
    """``entry(arguments)`` when it parses, is self-contained and fits the signature.

    With known ``parameters`` (plain positional ones), the call must name exactly those:
    all positionally, or the rest by keyword.
    """
    expression = _expression(f"{entry}({arguments})")
    if not isinstance(expression, ast.Call) or not _self_contained(expression, entry):
        return None
    if parameters is not None:
        positional = len(expression.args)
        named = sorted(str(keyword.arg) for keyword in expression.keywords)
        if positional > len(parameters) or sorted(parameters[positional:]) != named:
            return None
    return ast.unparse(expression)


def _parameters(query: str, entry: str) -> list[str] | None:
    """Parameter names of ``def entry(...)`` in the query (None: unknown or not plain)."""
    match = re.search(rf"def\s+{re.escape(entry)}\s*(\(.*?\))\s*(?:->[^:]*)?:", query, re.S)
    if match is None:
        return None
    try:
        tree = ast.parse(f"def _{match.group(1)}: pass")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    function = tree.body[0]
    assert isinstance(function, ast.FunctionDef)
    args = function.args
    if args.vararg or args.kwarg or args.defaults or args.kwonlyargs or args.posonlyargs:
        return None
    return [arg.arg for arg in args.args]


def _expression(source: str) -> ast.expr | None:
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    return tree.body


def _self_contained(expression: ast.AST, entry: str | None) -> bool:
    """Whether every name in ``expression`` is ``entry`` or a safe builtin (no dunders)."""
    for node in ast.walk(expression):
        if isinstance(node, ast.Name) and node.id != entry and node.id not in SAFE_NAMES:
            return False
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            return False
        if isinstance(node, ast.Lambda | ast.NamedExpr | ast.Await | ast.Yield | ast.YieldFrom):
            return False
    return True


def _calls_entry(node: ast.AST, entry: str | None) -> bool:
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        return False
    name = node.func.id
    return name == entry if entry is not None else name not in vars(builtins)


def _outer_calls(expression: ast.AST, entry: str | None) -> Iterator[str]:
    """Outermost self-contained calls of ``entry`` inside ``expression``."""
    if _calls_entry(expression, entry):
        if _self_contained(expression, entry if entry else _name_of(expression)):
            yield ast.unparse(expression)
        return
    for child in ast.iter_child_nodes(expression):
        yield from _outer_calls(child, entry)


def _name_of(call: ast.AST) -> str | None:
    if isinstance(call, ast.Call) and isinstance(call.func, ast.Name):
        return call.func.id
    return None


def _assert_lines(query: str) -> list[str]:
    """Distinct lines of the query that are one complete ``assert`` statement."""
    found: list[str] = []
    for raw in query.splitlines():
        line = raw.strip()
        if not line.startswith("assert") or line in found:
            continue
        try:
            tree = ast.parse(line)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
        if len(tree.body) == 1 and isinstance(tree.body[0], ast.Assert):
            found.append(line)
    return found


def _called_names(line: str) -> list[str]:
    names = [_name_of(ast.parse(call, mode="eval").body) for call in calls_in(line)]
    return [name for name in names if name is not None]


# ------------------------------------------------------------------ input/output blocks


@dataclass
class _Block:
    kind: str  # "input" or "output"
    labelled: bool  # the header itself says "sample" or "example"
    after_marker: bool  # an "Examples" / "Sample" heading came earlier
    lines: list[str]


def io_examples(query: str) -> list[tuple[str, str]]:
    """(input text, expected output text) pairs from the query's example blocks.

    Contest statements also head their input *specification* ``Input``. So when the query
    has a ``Sample``/``Example`` heading anywhere, only blocks labelled so or placed after
    such a heading count; otherwise a block counts when its text does not read like prose.
    """
    blocks = list(_blocks(query.splitlines()))
    marked = any(b.labelled or b.after_marker for b in blocks)
    pairs: list[tuple[str, str]] = []
    pending: _Block | None = None
    for block in blocks:
        if not _is_example(block, marked):
            pending = None
        elif block.kind == "input":
            pending = block
        elif pending is not None:
            stdin, stdout = _text(pending.lines), _text(block.lines)
            if stdin.strip() and stdout.strip():
                pairs.append((stdin, stdout))
            pending = None
    return pairs


def _blocks(lines: Sequence[str]) -> Iterator[_Block]:
    current: _Block | None = None
    seen_marker = False
    for raw in lines:
        line = _DECORATION.sub("", raw)
        header = _IO_HEADER.match(line)
        if header is not None:
            if current is not None:
                yield current
            inline = (header.group("inline") or "").strip()
            labelled = _MARKER.search(header.group("label")) is not None
            current = _Block(header.group("kind").lower(), labelled, seen_marker, [])
            if inline:
                current.lines.append(inline)
            continue
        if _OTHER_HEADER.match(line):
            if current is not None:
                yield current
                current = None
            seen_marker = seen_marker or _MARKER.search(line) is not None
            continue
        if current is None:
            continue
        if current.kind == "output" and _ends_output(raw, current.lines):
            yield current  # an output ends at its first blank line or sentence of prose
            current = None
            continue
        current.lines.append(raw.rstrip())
    if current is not None:
        yield current


def _ends_output(line: str, lines: Sequence[str]) -> bool:
    if not any(s.strip() for s in lines):
        return False
    return not line.strip() or _looks_like_prose(line)


def _is_example(block: _Block, marked: bool) -> bool:
    if block.labelled or block.after_marker:
        return True
    return not marked and not _looks_like_prose(_text(block.lines))


def _looks_like_prose(text: str) -> bool:
    """A sentence of words, as in "The first line contains an integer n."."""
    return any(len(_WORD.findall(line)) >= 4 for line in text.splitlines())


def _text(lines: Sequence[str]) -> str:
    """The block's lines without the indentation they share and surrounding blank lines."""
    body = list(lines)
    while body and not body[0].strip():
        body.pop(0)
    while body and not body[-1].strip():
        body.pop()
    indent = min((len(s) - len(s.lstrip()) for s in body if s.strip()), default=0)
    return "\n".join(s[indent:] for s in body) + ("\n" if body else "")


def _distinct(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _distinct_tests(tests: Sequence[TestCase]) -> tuple[TestCase, ...]:
    seen: dict[tuple[str, str, str | None], TestCase] = {}
    for test in tests:
        seen.setdefault((test.text, test.stdin, test.stdout), test)
    return tuple(seen.values())
