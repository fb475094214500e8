"""What the editor shows about layer kinds: parameters, types, defaults, documentation.

Read from the registry (``get``, iteration, ``in``) and from each kind's ``Params`` pydantic
model; a field's documentation is the string literal under it in the source (the convention
the layers follow), read once per class.
"""

from __future__ import annotations

import ast as pyast
import inspect
import textwrap
import types as pytypes
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from typing import Any, Literal, Union, get_args, get_origin

from pydantic.fields import FieldInfo

from archon.layers.base import AnyLayer
from archon.layers.registry import Registry, UnknownLayerKind

VALUE_FUNCTIONS: dict[str, str] = {
    "choice": "`choice(a, b, ...)`: a search hole that takes one of the options "
    "(`default = ...` names the one used without a search).",
    "int": "`int(low, high)`: a search hole over the whole numbers low..high "
    "(`default = ...`, `log = true`).",
    "float": "`float(low, high)`: a search hole over the real numbers low..high "
    "(`default = ...`, `log = true`).",
    "file": '`file("path")`: the text of a file, relative to this `.pipe` file.',
    "model": '`model("provider/name", option = ...)`: a model string with provider options '
    "(`api_base`, ...), in a `models { }` block.",
}

KEYWORDS: dict[str, str] = {
    "import": '`import "lib/models.pipe"`: the models, prompts and blocks of another file.',
    "models": '`models { name = "provider/model" }`: model aliases.',
    "prompts": '`prompts { name = "text" }`: named prompts (text or `file(...)`).',
    "block": "`block name(param, other = default) { ... }`: a reusable group of layers.",
    "pipeline": "`pipeline name { ... }`: the layers run for each query, in order.",
    "budget": "`budget { calls <= 40  tokens <= 80_000 }`: per-query limits "
    "(calls, tokens, usd, seconds).",
    "repeat": "`repeat N { ... }`: the body N times (N may be a hole: `repeat int(0, 2)`).",
    "optional": "`optional kind(...)`: a search switch that keeps the layer or drops it.",
    "true": "The boolean true.",
    "false": "The boolean false.",
}

BUDGET_NAMES: dict[str, str] = {
    "calls": "model calls per query",
    "tokens": "tokens (prompt + completion) per query",
    "usd": "cost in US dollars per query",
    "seconds": "wall-clock seconds per query",
}


@dataclass(frozen=True)
class ParamInfo:
    name: str
    type: str
    default: str | None
    """The default as ``.pipe`` text; None when the parameter is required."""
    doc: str
    constraints: str
    options: tuple[object, ...]
    """The values of a ``Literal`` type (for completion); empty otherwise."""
    is_bool: bool


def rst_to_markdown(text: str) -> str:
    return text.replace("``", "`")


def lookup(registry: Registry, kind: str) -> type[AnyLayer] | None:
    if kind not in registry:
        return None
    try:
        return registry.get(kind)
    except UnknownLayerKind:
        return None


def kind_names(registry: Registry) -> list[str]:
    return [layer.kind for layer in registry]


def summary(layer: type[AnyLayer]) -> str:
    doc = inspect.getdoc(layer) or ""
    return rst_to_markdown(doc.splitlines()[0]) if doc else ""


def ports(layer: type[AnyLayer]) -> str:
    consumes = ", ".join(t.__name__ for t in layer.consumes) or "query"
    return f"{consumes} → {layer.produces.__name__}"


def type_text(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return " | ".join(_pipe_literal(option) for option in get_args(annotation))
    origin = get_origin(annotation)
    if origin in (Union, pytypes.UnionType):
        return " | ".join(type_text(arg) for arg in get_args(annotation))
    if annotation is type(None):
        return "None"
    if origin is None:
        return getattr(annotation, "__name__", None) or str(annotation)
    return str(annotation).replace("typing.", "")


def literal_options(annotation: Any) -> tuple[object, ...]:
    """The options of a Literal type, also inside ``X | None`` and ``tuple[Literal, ...]``."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    options: list[object] = []
    for arg in get_args(annotation):
        options.extend(literal_options(arg))
    return tuple(dict.fromkeys(options))


def _pipe_literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if value is None:
        return "none"
    return repr(value)


def _default_text(field: FieldInfo) -> str | None:
    if field.is_required():
        return None
    value = field.get_default(call_default_factory=True)
    if isinstance(value, tuple):
        return "[" + ", ".join(_pipe_literal(v) for v in value) + "]"
    return _pipe_literal(value) if value is not None else "none (provider default)"


def _constraints(field: FieldInfo) -> str:
    parts = []
    for meta in field.metadata:
        for attribute in ("gt", "ge", "lt", "le", "min_length", "max_length"):
            value = getattr(meta, attribute, None)
            if value is not None:
                symbol = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}.get(attribute)
                parts.append(f"{symbol} {value}" if symbol else f"{attribute} {value}")
    return ", ".join(parts)


@cache
def _field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a class and its bases (a string literal under a field)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            source = textwrap.dedent(inspect.getsource(klass))
            tree = pyast.parse(source)
        except (OSError, TypeError, SyntaxError):
            continue
        if not tree.body or not isinstance(tree.body[0], pyast.ClassDef):
            continue
        body = tree.body[0].body
        for statement, following in pairwise(body):
            if (
                isinstance(statement, pyast.AnnAssign)
                and isinstance(statement.target, pyast.Name)
                and isinstance(following, pyast.Expr)
                and isinstance(following.value, pyast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[statement.target.id] = inspect.cleandoc(following.value.value)
    return docs


def params(layer: type[AnyLayer]) -> list[ParamInfo]:
    docs = _field_docs(layer.Params)  # type: ignore[arg-type]
    infos = []
    for name, field in layer.Params.model_fields.items():
        annotation = field.annotation
        infos.append(
            ParamInfo(
                name=name,
                type=type_text(annotation),
                default=_default_text(field),
                doc=rst_to_markdown(field.description or docs.get(name, "")),
                constraints=_constraints(field),
                options=literal_options(annotation),
                is_bool=annotation is bool or annotation == (bool | None),
            )
        )
    return infos


def param(layer: type[AnyLayer], name: str) -> ParamInfo | None:
    return next((p for p in params(layer) if p.name == name), None)


def kind_markdown(layer: type[AnyLayer]) -> str:
    """A kind's hover: ports, documentation and a table of its parameters."""
    doc = rst_to_markdown(inspect.getdoc(layer) or "")
    params_doc = rst_to_markdown(inspect.getdoc(layer.Params) or "")
    lines = [f"**{layer.kind}** — layer kind ({ports(layer)})", "", doc]
    if params_doc and params_doc != doc:
        lines += ["", params_doc]
    lines += ["", "| parameter | type | default |", "|---|---|---|"]
    for info in params(layer):
        default = "*required*" if info.default is None else f"`{info.default}`"
        kind = info.type.replace("|", "\\|")
        lines.append(f"| `{info.name}` | `{kind}` | {default} |")
    return "\n".join(lines)


def param_markdown(layer: type[AnyLayer], info: ParamInfo) -> str:
    default = "required" if info.default is None else f"default `{info.default}`"
    lines = [f"**{info.name}**: `{info.type}` — {default}  ({layer.kind})"]
    if info.constraints:
        lines += ["", f"Allowed: {info.constraints}"]
    if info.doc:
        lines += ["", info.doc]
    return "\n".join(lines)
