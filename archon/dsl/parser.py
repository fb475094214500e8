"""``parse(text, path) -> ast.File``: the only place that knows about lark exceptions.

The Lark instance is built once (LALR, positions on); a non-recursive transformer turns the
tree into the frozen AST, so deeply nested input cannot overflow the stack. Every syntax
problem becomes a :class:`Diagnostic` with a ``file:line:col`` span and a hint; nothing else
escapes this module.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.tree import Meta
from lark.visitors import Transformer_NonRecursive

from archon.dsl import ast
from archon.dsl._lark_cache import grammar_cache_path
from archon.dsl.limits import int_digits_problem
from archon.dsl.syntax_examples import SYNTAX_EXAMPLES
from archon.errors import Diagnostic, DiagnosticError
from archon.source import SourceFile, Span

__all__ = ["grammar_text", "lark_parser", "parse", "parse_source", "paused_gc"]

# What the user would type for each terminal, used in "expected one of ..." messages.
_TERMINAL_TEXT = {
    "NAME": "a name",
    "INT": "a number",
    "FLOAT": "a number",
    "STRING": "a string",
    "LONG_STRING": "a string",
    "$END": "end of file",
}
_MAX_EXPECTED = 5
_COMMENT_SCAN = re.compile(r'"""[^"]*(?:"(?!"")[^"]*)*"""|"[^"\\\n]*(?:\\.[^"\\\n]*)*"|#[^\n]*')
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r"}

_SPAN_FIELDS = set(Span.model_fields)
"""The fields-set every parsed span shares. ``model_construct`` would otherwise give each
span its own set of the five names (about 730 bytes, three times the span itself); a frozen
span never mutates it, and ``model_copy`` copies it before adding to it."""


def grammar_text() -> str:
    """The grammar source (``archon/dsl/grammar.lark``)."""
    return resources.files("archon.dsl").joinpath("grammar.lark").read_text(encoding="utf-8")


@cache
def lark_parser() -> Lark:
    """The shared LALR parser (built once; lark parsers are reusable; tables cached on disk).

    It builds the AST while it parses (see :class:`_Streaming`); outside
    :func:`parse_source` it returns an ordinary lark tree.
    """
    return Lark(
        grammar_text(),
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
        cache=grammar_cache_path(),
        transformer=_Streaming(),
    )


def parse(text: str, path: str = "<string>") -> ast.File:
    """Parse ``.pipe`` text; raises :class:`DiagnosticError` on any syntax problem."""
    return parse_source(SourceFile(path, text))


def parse_source(source: SourceFile) -> ast.File:
    """Parse a :class:`SourceFile` (see :func:`parse`)."""
    parser = lark_parser()
    transformer = _ToAst(source.path)
    with paused_gc():
        token = _BUILDER.set(transformer)
        try:
            tree = parser.parse(source.text)
        except UnexpectedInput as error:
            raise DiagnosticError([_syntax_diagnostic(error, source, parser)]) from None
        except RecursionError:
            raise DiagnosticError(
                [
                    Diagnostic(
                        code="E104", message="input is nested too deeply", span=source.end_span()
                    )
                ]
            ) from None
        finally:
            _BUILDER.reset(token)
        # Each rule became AST as soon as its parent was reduced: only the root is left.
        start = transformer.finish(tree)
        del tree  # freed while collection is paused: reference counting suffices
        if transformer.problems:
            raise DiagnosticError(transformer.problems)
    assert isinstance(start, ast.File)
    return ast.File(items=start.items, path=source.path, comments=_comments(source))


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small acyclic objects.

    Parsing allocates a tree node per token; with the collector running, its repeated full
    passes make parsing superlinear (10x the nodes took 28x the time). The previous state is
    restored on exit, so callers that disabled collection themselves are unaffected.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _comments(source: SourceFile) -> tuple[ast.Comment, ...]:
    comments = []
    for match in _COMMENT_SCAN.finditer(source.text):
        if match.group().startswith("#"):
            comments.append(
                ast.Comment(match.group(), _offset_span(source, match.start(), match.end()))
            )
    return tuple(comments)


def _offset_span(source: SourceFile, start: int, end: int) -> Span:
    line, col = source.position(start)
    end_line, end_col = source.position(end)
    return Span.model_construct(
        _SPAN_FIELDS, path=source.path, line=line, col=col, end_line=end_line, end_col=end_col
    )


# --- errors -------------------------------------------------------------------------------


def _syntax_diagnostic(error: UnexpectedInput, source: SourceFile, parser: Lark) -> Diagnostic:
    if isinstance(error, UnexpectedCharacters):
        position = error.pos_in_stream or 0
        char = source.text[position] if position < len(source.text) else ""
        span = _point(source, error.line, error.column)
        if char == '"':
            # An unclosed """ lexes as an empty "" string followed by a lone quote.
            long_string = source.text.startswith('"""', position) or (
                position >= 2 and source.text[position - 2 : position] == '""'
            )
            if long_string and not source.text.startswith('"""', position):
                span = _point(source, error.line, max(1, error.column - 2))
            return Diagnostic(
                code="E105",
                message="this string is never closed"
                if long_string
                else "this string is not closed on its line",
                span=span,
                hint='close it with """'
                if long_string
                else 'close it with ", or use """...""" for text over several lines',
            )
        # lark's set of allowed characters at this point mixes in other parser states, so it
        # would mislead as a hint; only characters with a known cause get one.
        hints = {"'": "strings are written in double quotes", ";": "statements need no `;`"}
        return Diagnostic(
            code="E101",
            message=f"unexpected character {char!r}",
            span=span,
            hint=hints.get(char),
        )
    label = _match_example(error, parser)
    if isinstance(error, UnexpectedToken) and error.token.type != "$END":
        token: Token = error.token
        span = Span(
            path=source.path,
            line=token.line or 1,
            col=token.column or 1,
            end_line=token.end_line or token.line or 1,
            end_col=token.end_column or (token.column or 1) + 1,
        )
        if token.end_line != token.line:
            span = span.model_copy(update={"end_line": span.line, "end_col": span.col + 1})
        return Diagnostic(
            code="E102",
            message=label or f"unexpected {_describe(token)}",
            span=span,
            hint=_expected_hint(error.accepts or error.expected, parser),
        )
    # End of input: lark reports no position, so point at the end of the file.
    expected: set[str] = set()
    if isinstance(error, UnexpectedToken):
        expected = set(error.accepts or error.expected)
    elif isinstance(error, UnexpectedEOF):
        expected = {str(name) for name in error.expected}
    return Diagnostic(
        code="E103",
        message=label or "file ended while a construct was still open",
        span=source.end_span(),
        hint=_expected_hint(expected, parser),
    )


def _match_example(error: UnexpectedInput, parser: Lark) -> str | None:
    """The label of a syntax example that fails in the same parser state on the same token.

    Only the current LALR state and the offending token type are compared (not the whole
    stack, as lark's ``match_examples`` does), so a label fires wherever the mistake sits in
    a file, not only in its first top-level item.
    """
    if not isinstance(error, UnexpectedToken) or error.state is None:
        return None
    return _example_labels().get((error.state.position, error.token.type))


@cache
def _example_labels() -> dict[tuple[int, str], str]:
    """(LALR state, token type) -> label, computed once from SYNTAX_EXAMPLES."""
    parser = lark_parser()
    labels: dict[tuple[int, str], str] = {}
    for label, snippets in SYNTAX_EXAMPLES.items():
        for snippet in snippets:
            try:
                parser.parse(snippet)
            except UnexpectedToken as error:
                if error.state is not None:
                    labels.setdefault((error.state.position, error.token.type), label)
            except UnexpectedInput:
                continue
    return labels


def _point(source: SourceFile, line: int, column: int) -> Span:
    return Span(path=source.path, line=line, col=column, end_line=line, end_col=column + 1)


def _describe(token: Token) -> str:
    text = str(token)
    if token.type in ("STRING", "LONG_STRING"):
        return "string"
    if token.type in ("INT", "FLOAT"):
        return f"number {text}"
    if token.type == "NAME":
        return f"name '{text}'"
    return f"'{text}'"


def _terminal_text(name: str, parser: Lark) -> str:
    if name in _TERMINAL_TEXT:
        return _TERMINAL_TEXT[name]
    try:
        pattern = parser.get_terminal(name).pattern
    except KeyError:
        return name
    return f"'{pattern.value}'" if pattern.type == "str" else name.lower()


def _expected_hint(expected: set[str] | frozenset[str], parser: Lark) -> str | None:
    texts = sorted({_terminal_text(name, parser) for name in expected})
    if not texts:
        return None
    shown = texts[:_MAX_EXPECTED]
    more = " ..." if len(texts) > _MAX_EXPECTED else ""
    return "expected " + ", ".join(shown) + more


# --- tree to AST --------------------------------------------------------------------------


def _span(path: str, meta: Meta) -> Span:
    if meta.empty:
        return ast.NO_SPAN
    # model_construct skips validation: lark's positions are ints already, and parsing
    # builds one span per token, so this is the parser's hot path.
    return Span.model_construct(
        _SPAN_FIELDS,
        path=path,
        line=meta.line,
        col=meta.column,
        end_line=meta.end_line,
        end_col=meta.end_column,
    )


def _token_span(path: str, token: Token) -> Span:
    return Span.model_construct(
        _SPAN_FIELDS,
        path=path,
        line=token.line or 1,
        col=token.column or 1,
        end_line=token.end_line or 1,
        end_col=token.end_column or 1,
    )


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), body)


def _number(text: str) -> int | float:
    clean = text.replace("_", "")
    if any(c in clean for c in ".eE"):
        return float(clean)
    return int(clean)


_BUILDER: ContextVar[_ToAst | None] = ContextVar("archon_pipe_builder", default=None)
"""The AST builder of the parse running in this thread (None outside :func:`parse_source`)."""


class _Streaming:
    """lark's in-parser transformer: turns a rule's children into AST as soon as the rule is
    reduced.

    Every rule still becomes a lark ``Tree`` first, so that lark fills in its positions (from
    all its tokens, keywords and brackets included); the tree's children are converted to AST
    nodes right away and the child trees dropped. Only the trees on the parser's stack are
    alive at any time, never the whole parse tree, so memory is the AST's plus the nesting.
    """

    def __default__(self, data: str, children: list[Any], meta: object) -> Tree[Any]:
        builder = _BUILDER.get()
        if builder is None:
            return Tree(data, children)
        if not data.startswith("_"):
            # A new list: lark still reads the child trees' positions from the old one.
            built = [builder._build(c) if isinstance(c, Tree) else c for c in children]
            return Tree(data, built)
        # A helper rule lark inlines into its parent (``stmt*``, ``("," value)*``). lark
        # extends the list of the previous step's helper tree in place, so only the new
        # children at its end are trees still: converting only those keeps a long list
        # linear. That list is ours (an _Owned) and lark reads positions from its own list of
        # the step's children; any other list (a first step) is lark's, so it is copied.
        if not isinstance(children, _Owned):
            children = _Owned(children)
        index = len(children) - 1
        while index >= 0 and isinstance(children[index], Tree):
            children[index] = builder._build(children[index])
            index -= 1
        return Tree(data, children)


class _Owned(list):  # type: ignore[type-arg]
    """The children list of a helper tree built by :class:`_Streaming` (safe to edit)."""


@v_args(meta=True, inline=True)
class _ToAst(Transformer_NonRecursive):  # type: ignore[type-arg]
    """Structural only: builds AST nodes, validates nothing (that is the compiler's job).

    Each callback receives a rule's parts as arguments (keywords and punctuation are left
    out of the tree; an absent ``[part]`` is None), so no callback depends on where a part
    sits among tokens it does not use.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.problems: list[Diagnostic] = []
        self._callbacks: dict[str, Any] = {}

    # Names starting with "_" are not wrapped by the class's v_args (a wrapped method builds a
    # new wrapper, with functools.update_wrapper, on every attribute access): _build runs once
    # per reduced rule.
    def _build(self, tree: Tree[Token]) -> object:
        """The AST of one reduced rule whose children are AST already."""
        name = str(tree.data)
        callback = self._callbacks.get(name)
        if callback is None:
            # v_args wraps the method anew (functools.update_wrapper) on every attribute
            # access: looked up once per rule, a 1 MB parse takes a quarter less time.
            callback = self._callbacks[name] = getattr(self, name)
        return callback(tree.meta, *tree.children)

    def finish(self, tree: object) -> object:
        """The AST of the parse's result (the ``start`` rule, not yet converted)."""
        return self._build(tree) if isinstance(tree, Tree) else tree

    def start(self, meta: Meta, *items: ast.Item) -> ast.File:
        return ast.File(items=items)

    def import_stmt(self, meta: Meta, path: ast.Str) -> ast.Import:
        return ast.Import(path=path, span=_span(self.path, meta))

    def models_block(self, meta: Meta, *entries: ast.Binding) -> ast.ModelsBlock:
        return ast.ModelsBlock(entries=entries, span=_span(self.path, meta))

    def prompts_block(self, meta: Meta, *entries: ast.Binding) -> ast.PromptsBlock:
        return ast.PromptsBlock(entries=entries, span=_span(self.path, meta))

    def binding(self, meta: Meta, name: ast.Name, value: ast.Value) -> ast.Binding:
        return ast.Binding(name=name, value=value, span=_span(self.path, meta))

    def block_def(
        self,
        meta: Meta,
        name: ast.Name,
        params: tuple[ast.BlockParam, ...] | None,
        *body: ast.Stmt,
    ) -> ast.BlockDef:
        span = _span(self.path, meta)
        return ast.BlockDef(name=name, params=params or (), body=body, span=span)

    def block_params(self, meta: Meta, *params: ast.BlockParam) -> tuple[ast.BlockParam, ...]:
        return params

    def block_param(self, meta: Meta, name: ast.Name, default: ast.Value | None) -> ast.BlockParam:
        return ast.BlockParam(name=name, default=default, span=_span(self.path, meta))

    def pipeline_def(self, meta: Meta, name: ast.Name, *body: ast.Stmt) -> ast.PipelineDef:
        return ast.PipelineDef(name=name, body=body, span=_span(self.path, meta))

    def budget_entry(self, meta: Meta, name: ast.Name, value: ast.Num) -> ast.BudgetEntry:
        return ast.BudgetEntry(name=name, value=value, span=_span(self.path, meta))

    def budget_stmt(self, meta: Meta, *entries: ast.BudgetEntry) -> ast.BudgetStmt:
        return ast.BudgetStmt(entries=entries, span=_span(self.path, meta))

    def layer_stmt(
        self,
        meta: Meta,
        label: ast.Name | None,
        optional: bool | None,
        call: ast.Call,
        inputs: tuple[ast.Name, ...] | None,
    ) -> ast.LayerStmt:
        return ast.LayerStmt(
            call=call,
            label=label,
            optional=optional is not None,
            inputs=inputs,
            span=_span(self.path, meta),
        )

    def optional_first_layer_stmt(
        self,
        meta: Meta,
        optional: bool,
        label: ast.Name,
        call: ast.Call,
        inputs: tuple[ast.Name, ...] | None,
    ) -> ast.LayerStmt:
        """``optional name = kind(...)``: the same statement with its first two parts swapped."""
        return self.layer_stmt(meta, label, optional, call, inputs)

    def repeat_stmt(
        self, meta: Meta, label: ast.Name | None, count: ast.Value, *body: ast.Stmt
    ) -> ast.RepeatStmt:
        return ast.RepeatStmt(count=count, body=body, label=label, span=_span(self.path, meta))

    def label(self, meta: Meta, name: ast.Name) -> ast.Name:
        return name

    def optional_kw(self, meta: Meta) -> bool:
        return True

    def inputs(self, meta: Meta, *names: ast.Name) -> tuple[ast.Name, ...]:
        return names

    def call(self, meta: Meta, name: ast.Name, args: tuple[ast.Arg, ...] | None) -> ast.Call:
        return ast.Call(name=name, args=args or (), span=_span(self.path, meta))

    def args(self, meta: Meta, *args: ast.Arg) -> tuple[ast.Arg, ...]:
        return args

    def named_arg(self, meta: Meta, name: ast.Name, value: ast.Value) -> ast.Arg:
        return ast.Arg(name=name, value=value, span=_span(self.path, meta))

    def positional_arg(self, meta: Meta, value: ast.Value) -> ast.Arg:
        return ast.Arg(name=None, value=value, span=_span(self.path, meta))

    def true(self, meta: Meta) -> ast.Bool:
        return ast.Bool(True, span=_span(self.path, meta))

    def false(self, meta: Meta) -> ast.Bool:
        return ast.Bool(False, span=_span(self.path, meta))

    def list_value(self, meta: Meta, *items: ast.Value) -> ast.ListValue:
        return ast.ListValue(items=items, span=_span(self.path, meta))

    def ref(self, meta: Meta, name: ast.Name) -> ast.Ref:
        return ast.Ref(name.text, span=name.span)

    def string(self, meta: Meta, token: Token) -> ast.Str:
        return ast.Str(_unescape(token[1:-1]), span=_token_span(self.path, token))

    def long_string(self, meta: Meta, token: Token) -> ast.Str:
        return ast.Str(token[3:-3], span=_token_span(self.path, token))

    def number(self, meta: Meta, token: Token) -> ast.Num:
        span = _token_span(self.path, token)
        if token.type == "INT":
            problem = int_digits_problem(token, span)
            if problem is not None:  # collected, raised after the walk; 0 stands in
                self.problems.append(problem)
                return ast.Num(0, span=span)
        return ast.Num(_number(token), span=span)

    def name(self, meta: Meta, token: Token) -> ast.Name:
        return ast.Name(str(token), span=_token_span(self.path, token))
