"""Kind lookup and parameter validation through each kind's pydantic ``Params``.

Every option of every hole is validated, not just the default, so a search can never sample
a configuration the layer would reject. Pydantic errors are mapped back through ``loc`` to the
argument's span, so the caret sits under the bad value.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from archon.errors import Diagnostic, suggest
from archon.ir import Choice, FloatRange, IntRange, Node, Param, Pipeline, Value, is_hole
from archon.layers.base import Layer
from archon.layers.registry import Registry
from archon.source import Span


def check_params(pipeline: Pipeline, registry: Registry) -> list[Diagnostic]:
    """Unknown kinds, unknown/missing parameters and invalid values (all hole options)."""
    diagnostics: list[Diagnostic] = []
    for node in pipeline.nodes:
        if node.kind not in registry:
            diagnostics.append(
                Diagnostic(
                    code="E203",
                    message=f"unknown layer kind '{node.kind}'",
                    span=node.span,
                    hint=suggest(node.kind, registry.kinds()) or "see `archon kinds`",
                )
            )
            continue
        diagnostics.extend(_check_node(node, registry.get(node.kind)))
    return _unique(diagnostics)


def _options(value: Any) -> list[Value]:
    """The values of a hole worth validating: both ends, every choice, and the default."""
    if isinstance(value, Choice):
        return list(value.options)
    if isinstance(value, IntRange | FloatRange):
        options: list[Value] = [value.low, value.high]
        return options + ([value.default] if value.default_value is not None else [])
    return [value]


def _check_node(node: Node, layer: type[Layer]) -> list[Diagnostic]:
    """Validate the node with every hole at its default, then each hole option in turn.

    A problem with a hole's value is reported once, by the option that causes it (the
    default is one of the options), not again by every other trial that uses the default.
    """
    holes = {p.name for p in node.params if is_hole(p.value)}
    defaults = {p.name: (p.value.default if is_hole(p.value) else p.value) for p in node.params}
    diagnostics = [d for name, d in _validate(node, layer, defaults, None) if name not in holes]
    for param in node.params:
        if not is_hole(param.value):
            continue
        for option in _options(param.value):
            trial = dict(defaults, **{param.name: option})
            diagnostics.extend(
                d
                for name, d in _validate(node, layer, trial, (param, option))
                if name == param.name or name not in holes
            )
    return diagnostics


def _validate(
    node: Node, layer: type[Layer], arguments: dict[str, Any], hole: tuple[Param, Value] | None
) -> list[tuple[str, Diagnostic]]:
    """(parameter name, diagnostic) for each validation error; one per bad list."""
    try:
        layer.validate_params(arguments, strict=True)
    except ValidationError as error:
        return [
            (str(e["loc"][0]) if e.get("loc") else "", _diagnostic(node, layer, e, hole, more))
            for e, more in _per_list_errors(layer, arguments, error)
        ]
    return []


_MANY_ERRORS = 200  # more than this: read pydantic's errors of a shortened long list


def _per_list_errors(
    layer: type[Layer], arguments: dict[str, Any], error: ValidationError
) -> list[tuple[Any, int]]:
    """pydantic's errors, those of each list's items as (first, how many more).

    A 1 MB list of numbers where strings are expected was one diagnostic per item (166k,
    465 MB); and pydantic's error dicts alone take about 90 MB. When there are many errors
    and one long list, the errors are read from the same arguments with that list cut to its
    first items, and the bad items past the cut are added to its count.
    """
    if error.error_count() > _MANY_ERRORS:
        long = [
            name
            for name, value in arguments.items()
            if isinstance(value, tuple | list) and len(value) > _MANY_ERRORS
        ]
        if len(long) == 1:
            [name] = long
            short = dict(arguments, **{name: arguments[name][:_MANY_ERRORS]})
            try:
                layer.validate_params(short, strict=True)
            except ValidationError as fewer:
                grouped = _per_list(fewer.errors(include_url=False))
                cut = error.error_count() - fewer.error_count()  # bad items past the cut
                for index, (first, more) in enumerate(grouped):
                    if _item_of(first) == name:
                        grouped[index] = (first, more + cut)
                        return grouped
    return _per_list(error.errors(include_url=False))


def _item_of(error: Any) -> str | None:
    """The parameter whose list item the error is about, or None."""
    loc = error.get("loc", ())
    return str(loc[0]) if len(loc) > 1 and _is_int(loc[1]) else None


def _per_list(errors: list[Any]) -> list[tuple[Any, int]]:
    """(first error, how many more) per list whose items are bad; other errors as they are."""
    kept: list[list[Any]] = []
    by_list: dict[str, list[Any]] = {}
    for error in errors:
        name = _item_of(error)
        if name is not None:
            entry = by_list.get(name)
            if entry is not None:
                entry[1] += 1
                continue
            entry = by_list[name] = [error, 0]
        else:
            entry = [error, 0]
        kept.append(entry)
    return [(error, more) for error, more in kept]


def _diagnostic(
    node: Node,
    layer: type[Layer],
    error: Any,
    hole: tuple[Param, Value] | None,
    more: int = 0,
) -> Diagnostic:
    loc = error.get("loc", ())
    name = str(loc[0]) if loc else ""
    param = node.param(name)
    kind = node.kind
    if error["type"] == "extra_forbidden":
        fields = list(layer.Params.model_fields)
        return Diagnostic(
            code="E220",
            message=f"{kind}() has no parameter '{name}'",
            span=_name_span(param) or node.span,
            hint=suggest(name, fields) or f"{kind}() takes: {', '.join(fields)}",
        )
    if error["type"] == "missing":
        return Diagnostic(
            code="E221",
            message=f"{kind}() needs parameter '{name}'",
            span=node.span,
            hint=f"add `{name} = ...`; see `archon kinds` for what it means",
        )
    problem, hint = _problem(error)
    where = f"'{name}'" + (f" item {int(loc[1]) + 1}" if len(loc) > 1 and _is_int(loc[1]) else "")
    message = f"{kind}(): {where} {problem}"
    if error["type"] in _TYPES:
        message += f", not {_describe(error.get('input'))}"
    elif error["type"] in _BOUNDS or error["type"] == "literal_error":
        message += f", not {_show(error.get('input'))}"
    if more:
        message += f" (and {more:,} more bad item{'' if more == 1 else 's'})"
    notes: tuple[str, ...] = ()
    if hole is not None and hole[0].name == name:
        message = f"{kind}(): option {_show(hole[1])} of '{name}' is invalid: it {problem}"
        notes = ("every option of a search hole must be valid, so search never samples a bad one",)
    span = (param.value_span or param.span) if param is not None else node.span
    if (
        param is not None
        and param.span is not None
        and span is not None
        and not _within(span, param.span)
    ):
        notes = (*notes, f"it is passed to {kind}() as '{name}' at {param.span} (node '{node.id}')")
    return Diagnostic(code="E302", message=message, span=span, hint=hint, notes=notes)


_TYPES = {
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "tuple_type": "a list",
    "list_type": "a list",
}
_BOUNDS = {
    "greater_than_equal": ("at least", "ge"),
    "less_than_equal": ("at most", "le"),
    "greater_than": ("greater than", "gt"),
    "less_than": ("less than", "lt"),
}


def _problem(error: Any) -> tuple[str, str | None]:
    """Pydantic's error as plain words about the .pipe value, and a hint when one helps."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind in _TYPES:
        hint = None
        if kind in ("tuple_type", "list_type") and isinstance(value, str):
            hint = f"write a list: [{_show(value)}]"
        return f"must be {_TYPES[kind]}", hint
    if kind in _BOUNDS:
        words, key = _BOUNDS[kind]
        return f"must be {words} {_show(ctx.get(key))}", None
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        options = [o.strip().strip("'") for o in expected.replace(" or ", ", ").split(",")]
        hint = suggest(str(value), options) if isinstance(value, str) else None
        return f"must be one of {', '.join(_show(o) for o in options)}", hint
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)", None
    if kind == "string_too_short":
        return "must not be empty", None
    return _lower_first(error["msg"]), None


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {_show(value)}"
    if isinstance(value, tuple | list):
        return "a list"
    if isinstance(value, int | float):
        return f"the number {value}"
    return type(value).__name__


def _show(value: Any) -> str:
    """A value as it is written in a .pipe file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:39] + "…"
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, tuple | list):
        shown = [_show(v) for v in value[:_SHOWN_ITEMS]]
        if len(value) > _SHOWN_ITEMS:
            shown.append(f"… {len(value) - _SHOWN_ITEMS:,} more")
        return "[" + ", ".join(shown) + "]"
    return str(value)


_SHOWN_ITEMS = 10  # a list in a message shows this many items, then how many more


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _within(inner: Span, outer: Span) -> bool:
    return (
        inner.path == outer.path
        and (inner.line, inner.col) >= (outer.line, outer.col)
        and (inner.end_line, inner.end_col) <= (outer.end_line, outer.end_col)
    )


def _name_span(param: Param | None) -> Span | None:
    if param is None or param.span is None:
        return None
    span = param.span
    return span.model_copy(update={"end_line": span.line, "end_col": span.col + len(param.name)})


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _unique(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[tuple[str, str, str]] = set()
    unique = []
    for diagnostic in diagnostics:
        key = (diagnostic.code, diagnostic.message, str(diagnostic.span))
        if key not in seen:
            seen.add(key)
            unique.append(diagnostic)
    return unique
