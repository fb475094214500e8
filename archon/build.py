"""Build pipelines from Python: the same AST (and so the same IR) as a ``.pipe`` file.

Example::

    from archon.build import Pipeline, choice, int_range, ref

    p = (
        Pipeline("x", models={"small": "local/qwen2.5-coder-0.5b", "judge": "openai/gpt-4o-mini"})
        .budget(calls=40, usd=0.05)
        .generate(models=[ref("small"), ref("judge")], samples=choice(1, 3, 5), label="gen")
        .optional().critique(model=ref("judge"))
        .rank(model=ref("judge"), top_k=2)
        .repeat(int_range(0, 2), lambda b: b.fuse(models=[ref("judge")]))
        .layer("verify", model=ref("judge"), inputs=["gen"])
    )
    p.to_pipe()   # canonical .pipe text
    p.compile()   # archon.ir.Pipeline

Every builder is immutable: each method returns a new builder and leaves the old one as it
was, so a partial pipeline can be shared and extended in several directions. Any layer kind
is a method (``.vote(...)``, ``.unit_test_generate(...)``) through ``__getattr__``; the
generic form is ``.layer(kind, ...)``. Python values map to AST values: ``str`` to a string,
``bool`` to ``true``/``false``, ``int``/``float`` to numbers, lists and tuples to lists;
``ref(name)`` is a bare name (a model alias, prompt or block parameter) and ``choice``,
``int_range``, ``float_range``, ``prompt_file`` and ``model`` build the value calls.
"""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeAlias, cast

from archon.dsl import ast
from archon.dsl.printer import print_file

if TYPE_CHECKING:
    from archon import ir
    from archon.layers.registry import Registry

__all__ = [
    "Block",
    "Body",
    "Pipeline",
    "PyValue",
    "choice",
    "float_range",
    "int_range",
    "model",
    "prompt_file",
    "ref",
    "to_value",
]

PyValue: TypeAlias = (
    "ast.Value | str | bool | int | float | Sequence[PyValue]"  # a value a builder accepts
)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")
# Words the grammar reserves where a statement, label or value may start.
_KEYWORDS = frozenset(
    {"import", "models", "prompts", "block", "pipeline", "budget", "repeat", "optional"}
    | {"true", "false"}
)


# --- values -------------------------------------------------------------------------------


def to_value(value: PyValue) -> ast.Value:
    """Convert a Python value to an AST value (AST values pass through unchanged)."""
    if isinstance(value, ast.Str | ast.Num | ast.Bool | ast.ListValue | ast.Ref | ast.Call):
        return value
    if isinstance(value, bool):
        return ast.Bool(value)
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            raise ValueError("NaN cannot be written in a .pipe file")
        return ast.Num(value)
    if isinstance(value, str):
        return ast.Str(value)
    if isinstance(value, list | tuple):
        return ast.ListValue(tuple(to_value(item) for item in value))
    raise TypeError(f"cannot use {type(value).__name__} {value!r} as a .pipe value")


def ref(name: str) -> ast.Ref:
    """A bare name in value position: a model alias, a prompt name or a block parameter."""
    return ast.Ref(_value_name(name))


def choice(*options: PyValue) -> ast.Call:
    """A categorical hole: ``choice(a, b, ...)``; the first option is the default."""
    if not options:
        raise ValueError("choice() needs at least one option")
    return _call("choice", options)


def int_range(
    low: int,
    high: int,
    step: int | None = None,
    log: bool | None = None,
    default: int | None = None,
) -> ast.Call:
    """An integer hole ``int(low, high[, step = ..., log = ..., default = ...])``."""
    return _call("int", (low, high), step=step, log=log, default=default)


def float_range(
    low: float,
    high: float,
    log: bool | None = None,
    step: float | None = None,
    default: float | None = None,
) -> ast.Call:
    """A float hole ``float(low, high[, log = ..., step = ..., default = ...])``."""
    return _call("float", (low, high), log=log, step=step, default=default)


def prompt_file(path: str | Path) -> ast.Call:
    """``file("prompts/x.txt")``: a prompt read from a file next to the ``.pipe``."""
    return _call("file", (str(path),))


def model(name: str, **options: PyValue) -> ast.Call:
    """``model("provider/model", api_base = "...")``: a model with connection options."""
    return _call("model", (name,), **options)


def _call(function: str, positional: Iterable[PyValue], **named: PyValue | None) -> ast.Call:
    args = [ast.Arg(None, to_value(v)) for v in positional]
    args += [
        ast.Arg(ast.Name(_arg_name(k)), to_value(v)) for k, v in named.items() if v is not None
    ]
    return ast.Call(ast.Name(function), tuple(args))


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"{what} {name!r} is not a valid .pipe name")
    return name


def _value_name(name: str) -> str:
    _check_name(name, "reference")
    if name in ("true", "false"):
        raise ValueError(f"a reference cannot be named {name!r}: it reads as a bool")
    return name


def _arg_name(name: str) -> str:
    return _value_name(name)


def _statement_name(name: str, what: str) -> str:
    _check_name(name, what)
    if name in _KEYWORDS:
        raise ValueError(f"{what} {name!r} is a reserved word of the .pipe language")
    return name


# --- statements ---------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class _Statements:
    """Shared by :class:`Pipeline`, :class:`Block` and :class:`Body`: appends statements."""

    statements: tuple[ast.Stmt, ...] = ()
    pending_optional: bool = field(default=False, repr=False)

    def layer(
        self,
        kind: str,
        /,
        *args: PyValue,
        label: str | None = None,
        inputs: Sequence[str] | None = None,
        optional: bool = False,
        **params: PyValue,
    ) -> Self:
        """Append ``[label =] [optional] kind(args, params) [<- inputs]``.

        ``inputs`` names earlier nodes by label (explicit DAG edges); leaving it out (or
        passing an empty list) means the previous statement's output, as in the language.
        Positional ``args`` are for block calls with positional parameters.
        """
        call_args = [ast.Arg(None, to_value(v)) for v in args]
        call_args += [ast.Arg(ast.Name(_arg_name(k)), to_value(v)) for k, v in params.items()]
        stmt = ast.LayerStmt(
            call=ast.Call(ast.Name(_statement_name(kind, "layer kind")), tuple(call_args)),
            label=ast.Name(_statement_name(label, "label")) if label is not None else None,
            optional=optional or self.pending_optional,
            inputs=tuple(ast.Name(_check_name(i, "input")) for i in inputs) if inputs else None,
        )
        return self._with(statements=(*self.statements, stmt), pending_optional=False)

    def optional(self) -> Self:
        """Mark the next layer optional (its presence becomes a search dimension)."""
        return self._with(pending_optional=True)

    def budget(self, **limits: int | float) -> Self:
        """Append ``budget { calls <= 40  usd <= 0.05 ... }`` (limits in the order given)."""
        self._no_pending("budget")
        entries = tuple(
            ast.BudgetEntry(ast.Name(_check_name(k, "budget entry")), _number(v))
            for k, v in limits.items()
        )
        return self._with(statements=(*self.statements, ast.BudgetStmt(entries)))

    def repeat(
        self,
        count: int | ast.Value,
        body: Callable[[Body], Body] | Body,
        label: str | None = None,
    ) -> Self:
        """Append ``[label =] repeat count { body }``; ``body`` is a :class:`Body` or a
        function that extends an empty one, e.g. ``lambda b: b.fuse(models=[ref("j")])``."""
        self._no_pending("repeat")
        inner = body if isinstance(body, Body) else body(Body())
        if not isinstance(inner, Body):
            raise TypeError("the repeat body function must return the Body it was given, extended")
        inner._no_pending("the end of a repeat body")
        stmt = ast.RepeatStmt(
            count=to_value(count),
            body=inner.statements,
            label=ast.Name(_statement_name(label, "label")) if label is not None else None,
        )
        return self._with(statements=(*self.statements, stmt))

    def __getattr__(self, kind: str) -> Callable[..., Self]:
        """``builder.vote(...)`` is ``builder.layer("vote", ...)`` for any layer kind."""
        if kind.startswith("_"):
            raise AttributeError(kind)
        return functools.partial(self.layer, kind)

    def __repr__(self) -> str:
        name = vars(self).get("name", "")
        label = f" {name!r}" if name else ""
        return f"<{type(self).__name__}{label}: {len(self.statements)} statements>"

    def _with(self, **changes: Any) -> Self:
        """A copy with some fields changed: the one place a builder is ever written to."""
        new = copy.copy(self)
        for name, value in changes.items():
            object.__setattr__(new, name, value)
        return new

    def _no_pending(self, where: str) -> None:
        if self.pending_optional:
            raise ValueError(f"optional() must be followed by a layer, not {where}")


def _number(value: int | float) -> ast.Num:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"a budget limit must be a number, got {value!r}")
    return cast(ast.Num, to_value(value))


@dataclass(frozen=True, repr=False)
class Body(_Statements):
    """The statements of a ``repeat`` body."""


@dataclass(frozen=True, repr=False)
class Block(_Statements):
    """``block name(params) { ... }``: a reusable group of statements.

    ``params`` are names, or ``(name, default)`` pairs for parameters with a default. Use it
    from a pipeline (passed in ``blocks=``) as a layer of its own: ``.layer("name", ...)``.
    """

    name: str = ""
    params: tuple[str | tuple[str, PyValue], ...] = ()

    def __init__(self, name: str, params: Sequence[str | tuple[str, PyValue]] = ()) -> None:
        object.__setattr__(self, "statements", ())
        object.__setattr__(self, "pending_optional", False)
        object.__setattr__(self, "name", _statement_name(name, "block name"))
        object.__setattr__(self, "params", tuple(params))

    def to_item(self) -> ast.BlockDef:
        """The ``block`` definition as an AST item."""
        self._no_pending("the end of a block")
        return ast.BlockDef(
            name=ast.Name(self.name),
            params=tuple(_block_param(p) for p in self.params),
            body=self.statements,
        )


def _block_param(param: str | tuple[str, PyValue]) -> ast.BlockParam:
    if isinstance(param, str):
        return ast.BlockParam(ast.Name(_value_name(param)))
    name, default = param
    return ast.BlockParam(ast.Name(_value_name(name)), to_value(default))


@dataclass(frozen=True, repr=False)
class Pipeline(_Statements):
    """A whole ``.pipe`` file with one pipeline: imports, models, prompts, blocks, body."""

    name: str = ""
    models: tuple[tuple[str, ast.Value], ...] = ()
    prompts: tuple[tuple[str, ast.Value], ...] = ()
    imports: tuple[str, ...] = ()
    blocks: tuple[Block, ...] = ()

    def __init__(
        self,
        name: str,
        models: Mapping[str, PyValue] | None = None,
        prompts: Mapping[str, PyValue] | None = None,
        imports: Sequence[str] = (),
        blocks: Sequence[Block] = (),
    ) -> None:
        object.__setattr__(self, "statements", ())
        object.__setattr__(self, "pending_optional", False)
        object.__setattr__(self, "name", _statement_name(name, "pipeline name"))
        object.__setattr__(self, "models", _bindings(models))
        object.__setattr__(self, "prompts", _bindings(prompts))
        object.__setattr__(self, "imports", tuple(imports))
        object.__setattr__(self, "blocks", tuple(blocks))

    def to_ast(self) -> ast.File:
        """The whole file as an AST (the same tree the parser builds for the same text)."""
        self._no_pending("the end of the pipeline")
        items: list[ast.Item] = [ast.Import(ast.Str(path)) for path in self.imports]
        if self.models:
            items.append(ast.ModelsBlock(tuple(_binding(k, v) for k, v in self.models)))
        if self.prompts:
            items.append(ast.PromptsBlock(tuple(_binding(k, v) for k, v in self.prompts)))
        items += [block.to_item() for block in self.blocks]
        items.append(ast.PipelineDef(ast.Name(self.name), self.statements))
        return ast.File(tuple(items))

    def to_pipe(self) -> str:
        """The canonical ``.pipe`` text of :meth:`to_ast`."""
        return print_file(self.to_ast())

    def compile(
        self, registry: Registry | None = None, base_dir: str | Path | None = None
    ) -> ir.Pipeline:
        """Compile to the IR with :func:`archon.compiler.compile_ast` (same checks as a file).

        Raises :class:`archon.errors.DiagnosticError` when the pipeline does not check.
        """
        from archon.compiler import compile_ast  # deferred: importing the builder stays cheap

        return compile_ast(self.to_ast(), registry=registry, base_dir=base_dir)


def _bindings(values: Mapping[str, PyValue] | None) -> tuple[tuple[str, ast.Value], ...]:
    return tuple((_value_name(k), to_value(v)) for k, v in (values or {}).items())


def _binding(name: str, value: ast.Value) -> ast.Binding:
    return ast.Binding(ast.Name(name), value)
