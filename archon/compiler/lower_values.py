"""Lowering AST values to IR values and holes (``choice``, ``int``, ``float``, ``file``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from archon.dsl import ast
from archon.errors import Diagnostic, suggest
from archon.ir import Choice, FloatRange, Hole, IntRange, Value, is_hole
from archon.source import Span

IRValue = Value | Hole
HOLE_FUNCTIONS = ("choice", "int", "float")
VALUE_FUNCTIONS = (*HOLE_FUNCTIONS, "file", "model")


class LoweringFailed(Exception):
    """Internal: a value could not be lowered (a diagnostic has already been recorded)."""


@dataclass
class ValueScope:
    """Names a value may refer to: block parameters, prompt texts and model aliases."""

    params: Mapping[str, IRValue] = field(default_factory=dict)
    origins: Mapping[str, Span] = field(default_factory=dict)
    """Where each block parameter's value was written (the argument or the default)."""
    prompts: Mapping[str, str] = field(default_factory=dict)
    models: Mapping[str, str] = field(default_factory=dict)
    node_labels: Callable[[], list[str]] = field(default=lambda: [])

    def names(self) -> list[str]:
        return [*self.params, *self.prompts, *self.models]


class ValueLowerer:
    """Turns AST values into IR values, recording diagnostics in ``sink``."""

    def __init__(self, sink: list[Diagnostic], read_file: Callable[[ast.Str], str | None]):
        self.sink = sink
        self.read_file = read_file

    def error(self, code: str, message: str, span: Span | None, hint: str | None = None) -> None:
        self.sink.append(Diagnostic(code=code, message=message, span=span, hint=hint))

    def value(self, node: ast.Value, scope: ValueScope, *, allow_holes: bool) -> IRValue:
        """Lower one value; raises LoweringFailed after recording a diagnostic."""
        match node:
            case ast.Str(value=text):
                return text
            case ast.Num(value=number):
                if isinstance(number, float) and not math.isfinite(number):
                    self.error(
                        "E315",
                        "number is too large to represent",
                        node.span,
                        "use a value below 1e308",
                    )
                    raise LoweringFailed
                return number
            case ast.Bool(value=flag):
                return flag
            case ast.ListValue(items=items):
                lowered = [self.value(item, scope, allow_holes=False) for item in items]
                return tuple(v for v in lowered if not is_hole(v))  # type: ignore[misc]
            case ast.Ref():
                return self._ref(node, scope, allow_holes=allow_holes)
            case ast.Call():
                return self._call(node, scope, allow_holes=allow_holes)
        raise AssertionError(f"unexpected AST value {node!r}")  # pragma: no cover

    def concrete(self, node: ast.Value, scope: ValueScope) -> Value:
        lowered = self.value(node, scope, allow_holes=False)
        assert not is_hole(lowered)
        return lowered  # type: ignore[return-value]

    def _ref(self, node: ast.Ref, scope: ValueScope, *, allow_holes: bool) -> IRValue:
        if node.name in scope.params:
            value = scope.params[node.name]
            if is_hole(value) and not allow_holes:
                self._hole_not_allowed(node.span)
            return value
        if node.name in scope.prompts:
            return scope.prompts[node.name]
        if node.name in scope.models:
            return scope.models[node.name]
        hint = suggest(node.name, scope.names())
        if hint is None and node.name in scope.node_labels():
            hint = f"'{node.name}' is a node: connect it with `<- {node.name}` after the call"
        if hint is None and not scope.names():
            hint = 'strings are written in double quotes, e.g. "openai/gpt-4o-mini"'
        self.error("E201", f"unknown name '{node.name}'", node.span, hint)
        raise LoweringFailed

    def _hole_not_allowed(self, span: Span) -> None:
        self.error(
            "E303",
            "a search hole is allowed only as a whole parameter value",
            span,
            "write `param = choice([a, b], [a])` instead of a hole inside a list",
        )
        raise LoweringFailed

    def _call(self, node: ast.Call, scope: ValueScope, *, allow_holes: bool) -> IRValue:
        name = node.name.text
        if name in HOLE_FUNCTIONS and not allow_holes:
            self._hole_not_allowed(node.span)
        if name == "choice":
            return self._choice(node, scope)
        if name == "int":
            return self._int_range(node, scope)
        if name == "float":
            return self._float_range(node, scope)
        if name == "file":
            return self._file(node)
        if name == "model":
            self.error(
                "E214",
                "model(...) may only be used inside `models { }`",
                node.span,
                'define an alias: models { name = model("provider/model", ...) }',
            )
            raise LoweringFailed
        hint = suggest(name, VALUE_FUNCTIONS) or (
            "value functions are " + ", ".join(f"{f}(...)" for f in VALUE_FUNCTIONS)
        )
        self.error("E202", f"unknown function '{name}' in a value", node.name.span, hint)
        raise LoweringFailed

    def _positional(self, node: ast.Call) -> tuple[list[ast.Value], dict[str, ast.Arg]]:
        positional = [a.value for a in node.args if a.name is None]
        named: dict[str, ast.Arg] = {}
        for arg in node.args:
            if arg.name is not None:
                if arg.name.text in named:
                    self.error("E208", f"argument '{arg.name.text}' given twice", arg.name.span)
                named[arg.name.text] = arg
        return positional, named

    def _check_named(
        self, node: ast.Call, named: dict[str, ast.Arg], allowed: tuple[str, ...]
    ) -> None:
        for key, arg in named.items():
            if key not in allowed:
                assert arg.name is not None
                hint = suggest(key, allowed) or f"{node.name.text}() accepts {', '.join(allowed)}"
                self.error(
                    "E309", f"{node.name.text}() has no argument '{key}'", arg.name.span, hint
                )

    def _choice(self, node: ast.Call, scope: ValueScope) -> Choice:
        positional, named = self._positional(node)
        self._check_named(node, named, ())
        if not positional:
            self.error(
                "E301", "choice() needs at least one option", node.span, "e.g. choice(1, 3, 5)"
            )
            raise LoweringFailed
        options = tuple(self.concrete(option, scope) for option in positional)
        return Choice(options=options, span=node.span)

    def _bounds(
        self, node: ast.Call, scope: ValueScope, kind: type
    ) -> tuple[list[Value], dict[str, ast.Arg]]:
        positional, named = self._positional(node)
        if len(positional) != 2:
            self.error(
                "E308",
                f"{node.name.text}() needs exactly two bounds, got {len(positional)}",
                node.span,
                f"e.g. {node.name.text}(1, 5)" if kind is int else "e.g. float(0.2, 1.0)",
            )
            raise LoweringFailed
        bounds = [self.concrete(p, scope) for p in positional]
        for bound, raw in zip(bounds, positional, strict=True):
            ok = isinstance(bound, int) and not isinstance(bound, bool)
            if kind is float:
                ok = ok or isinstance(bound, float)
            if not ok:
                self.error(
                    "E308",
                    f"{node.name.text}() bounds must be {'integers' if kind is int else 'numbers'}",
                    raw.span,
                    "use float(lo, hi) for a range of real numbers" if kind is int else None,
                )
                raise LoweringFailed
        return bounds, named

    def _flag(self, arg: ast.Arg | None, scope: ValueScope) -> bool:
        if arg is None:
            return False
        value = self.concrete(arg.value, scope)
        if not isinstance(value, bool):
            self.error("E308", "expected true or false", arg.value.span)
            raise LoweringFailed
        return value

    def _number(self, arg: ast.Arg | None, scope: ValueScope, *, integer: bool) -> float | None:
        if arg is None:
            return None
        value = self.concrete(arg.value, scope)
        valid = isinstance(value, int | float) and not isinstance(value, bool)
        if not valid or (integer and not isinstance(value, int)):
            self.error(
                "E308", f"expected {'an integer' if integer else 'a number'}", arg.value.span
            )
            raise LoweringFailed
        assert isinstance(value, int | float)
        return value

    def _int_range(self, node: ast.Call, scope: ValueScope) -> IntRange:
        (low, high), named = self._bounds(node, scope, int)
        self._check_named(node, named, ("step", "log", "default"))
        assert isinstance(low, int) and isinstance(high, int)
        step = self._number(named.get("step"), scope, integer=True)
        default = self._number(named.get("default"), scope, integer=True)
        log = self._flag(named.get("log"), scope)
        self._range_sanity(node, low, high, step, default, log)
        return IntRange(
            low=low,
            high=high,
            step=int(step or 1),
            log=log,
            default_value=None if default is None else int(default),
            span=node.span,
        )

    def _float_range(self, node: ast.Call, scope: ValueScope) -> FloatRange:
        (low, high), named = self._bounds(node, scope, float)
        self._check_named(node, named, ("step", "log", "default"))
        assert isinstance(low, int | float) and isinstance(high, int | float)
        step = self._number(named.get("step"), scope, integer=False)
        default = self._number(named.get("default"), scope, integer=False)
        log = self._flag(named.get("log"), scope)
        self._range_sanity(node, low, high, step, default, log)
        return FloatRange(
            low=float(low),
            high=float(high),
            step=None if step is None else float(step),
            log=log,
            default_value=None if default is None else float(default),
            span=node.span,
        )

    def _range_sanity(
        self,
        node: ast.Call,
        low: float,
        high: float,
        step: float | None,
        default: float | None,
        log: bool,
    ) -> None:
        name = node.name.text
        if low > high:
            self.error(
                "E308",
                f"{name}() lower bound {low} is above upper bound {high}",
                node.span,
                f"write {name}({high}, {low})",
            )
            raise LoweringFailed
        if step is not None and step <= 0:
            self.error("E308", f"{name}() step must be positive", node.span)
            raise LoweringFailed
        if log and low <= 0:
            self.error(
                "E308",
                f"{name}(log = true) needs a positive lower bound, not {low}",
                node.span,
                f"a log scale never reaches 0: start above it, e.g. {name}("
                + ("1" if name == "int" else "0.01")
                + f", {high}, log = true)",
            )
            raise LoweringFailed
        if log and step is not None:
            self.error("E308", f"{name}() cannot have both log and step", node.span)
            raise LoweringFailed
        if default is not None and not low <= default <= high:
            self.error("E308", f"{name}() default {default} is outside [{low}, {high}]", node.span)
            raise LoweringFailed

    def _file(self, node: ast.Call) -> str:
        positional, named = self._positional(node)
        self._check_named(node, named, ())
        if len(positional) != 1 or not isinstance(positional[0], ast.Str):
            self.error(
                "E215", 'file() takes one path string, e.g. file("prompts/judge.txt")', node.span
            )
            raise LoweringFailed
        text = self.read_file(positional[0])
        if text is None:
            raise LoweringFailed
        return text
