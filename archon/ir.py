"""The one intermediate representation: a frozen, JSON-serialisable ``Pipeline``.

Everything after parsing speaks this type: the compiler produces it, the runtime executes it,
search reads its holes and returns concrete copies. Nothing mutates it; change it with
``model_copy(update=...)``. Collections are tuples so that freezing is real.

Structural holes are kept flat so that the runtime and graph code see a plain node list:

* ``optional critique(...)`` becomes a :class:`Switch` named ``critique_1.enabled`` whose value
  is ``Choice((True, False))``, and the node ``requires`` that switch to be at least 1;
* ``repeat int(0, 2) { fuse(...) }`` is unrolled to its maximum count (nodes ``fuse_1.1`` and
  ``fuse_1.2``) with a switch ``repeat_1.count``; copy *k* requires the count to be at least *k*.

A node whose requirement is not met is removed and its consumers read its inputs instead
(see :func:`archon.compiler.structure.resolve`).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal, TypeAlias, TypeGuard
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeAliasType

from archon.source import Span

Value = TypeAliasType("Value", "str | bool | int | float | tuple[Value, ...]")
"""A concrete parameter value: scalars and (nested) lists, stored as tuples."""


class Frozen(BaseModel):
    """Base for IR types: immutable, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Choice(Frozen):
    """A categorical hole: one of ``options`` (the first is the default)."""

    hole: Literal["choice"] = "choice"
    options: tuple[Value, ...]
    span: Span | None = None

    @property
    def default(self) -> Value:
        return self.options[0]


class IntRange(Frozen):
    """An integer hole ``low..high`` inclusive, optionally stepped; default ``low``."""

    hole: Literal["int"] = "int"
    low: int
    high: int
    step: int = 1
    log: bool = False
    default_value: int | None = None
    span: Span | None = None

    @property
    def default(self) -> int:
        return self.low if self.default_value is None else self.default_value

    def values(self) -> tuple[int, ...]:
        return tuple(range(self.low, self.high + 1, max(1, self.step)))


class FloatRange(Frozen):
    """A float hole ``low..high``, optionally log-scaled or stepped; default ``low``."""

    hole: Literal["float"] = "float"
    low: float
    high: float
    step: float | None = None
    log: bool = False
    default_value: float | None = None
    span: Span | None = None

    @property
    def default(self) -> float:
        return self.low if self.default_value is None else self.default_value


Hole: TypeAlias = Annotated[Choice | IntRange | FloatRange, Field(discriminator="hole")]
HOLE_TYPES = (Choice, IntRange, FloatRange)


def is_hole(value: object) -> TypeGuard[Choice | IntRange | FloatRange]:
    """True when ``value`` is a search hole rather than a concrete value."""
    return isinstance(value, HOLE_TYPES)


class Param(Frozen):
    """One ``name = value`` argument of a node; the value may be a hole."""

    name: str
    value: Hole | Value
    span: Span | None = None
    value_span: Span | None = None


class Requirement(Frozen):
    """The node exists only when switch ``switch`` has a value of at least ``at_least``."""

    switch: str
    at_least: int


class Node(Frozen):
    """One layer call. ``id`` is stable (a user label or ``{kind}_{ordinal}``)."""

    id: str
    kind: str
    params: tuple[Param, ...] = ()
    inputs: tuple[str, ...] = ()
    requires: tuple[Requirement, ...] = ()
    span: Span | None = None
    input_spans: tuple[Span | None, ...] = ()
    """Where each of ``inputs`` was named (``<- a, b``); empty when the inputs are implicit."""

    def input_span(self, index: int) -> Span | None:
        """The span of input ``index`` when it was written out, else the node's span."""
        if index < len(self.input_spans) and self.input_spans[index] is not None:
            return self.input_spans[index]
        return self.span

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def arguments(self) -> dict[str, Any]:
        """Parameter values as a plain dict (holes included), for ``Params`` validation."""
        return {p.name: p.value for p in self.params}


class Switch(Frozen):
    """A structural hole: an ``optional`` layer or the count of a ``repeat`` block."""

    name: str
    kind: Literal["optional", "repeat"]
    value: Hole | int | bool
    span: Span | None = None


class Budget(Frozen):
    """Per-query limits; ``None`` means unlimited."""

    calls: int | None = None
    tokens: int | None = None
    usd: float | None = None
    seconds: float | None = None
    span: Span | None = None

    def is_empty(self) -> bool:
        return all(v is None for v in (self.calls, self.tokens, self.usd, self.seconds))


class ModelSpec(Frozen):
    """A named model from the ``models { ... }`` block, with provider options."""

    alias: str
    model: str
    options: tuple[Param, ...] = ()
    span: Span | None = None


# --- model options a .pipe file may set ----------------------------------------------------
# A .pipe file is shared data: it may name where a model is served, but never carry a
# credential or steer one (headers, alternative endpoint options, key-holding variables).
# The compiler reports these with a position; the runtime refuses them again.

KEY_VARIABLE_SUFFIXES = ("_API_KEY", "_TOKEN")
_KEY_VARIABLE = re.compile(r"[A-Z][A-Z0-9_]*")
_CREDENTIAL_WORDS = frozenset(
    {"key", "keys", "secret", "secrets", "password", "passwd", "credential", "credentials"}
    | {"auth", "authorization", "bearer", "header", "headers", "cookie", "cookies"}
    | {"url", "uri", "base", "host", "endpoint", "proxy", "cert", "ssl", "tls", "verify"}
)


def is_key_variable(name: str) -> bool:
    """Whether ``api_key_env`` may name ``name``: upper-case, ending in ``_API_KEY`` or
    ``_TOKEN`` (so ``PATH``, ``HOME`` or ``AWS_SECRET_ACCESS_KEY`` are never sent as keys)."""
    return bool(_KEY_VARIABLE.fullmatch(name)) and name.endswith(KEY_VARIABLE_SUFFIXES)


def model_option_problem(name: str, value: object) -> tuple[str, str] | None:
    """Why a ``.pipe`` file may not set model option ``name`` to ``value``, as
    ``(message, hint)``; None when it may."""
    if name == "api_key":
        return (
            "do not write API keys in .pipe files",
            'put the key in an environment variable and name it: api_key_env = "MY_API_KEY"',
        )
    if name == "api_key_env":
        if isinstance(value, str) and is_key_variable(value):
            return None
        return (
            f"api_key_env must name a key variable, not {value!r}",
            "use an upper-case name ending in _API_KEY or _TOKEN, e.g. api_key_env ="
            ' "MY_SERVER_API_KEY"',
        )
    if name == "api_base":
        if isinstance(value, str) and url_has_credentials(value):
            return (
                "api_base must not carry credentials (user:password@ in the URL would be sent"
                " as Basic auth to that server)",
                'drop the user:password@ part and name a key variable: api_key_env = "MY_API_KEY"',
            )
        if isinstance(value, str) and _is_http_url(value):
            return None
        return (
            f"api_base must be an http:// or https:// URL, not {value!r}",
            'e.g. api_base = "http://127.0.0.1:8000/v1"',
        )
    words = set(name.lower().split("_"))
    token = "token" in words and not name.endswith(("_per_token", "_tokens"))
    if words & _CREDENTIAL_WORDS or token:
        return (
            f"model option '{name}' may carry credentials or redirect requests",
            "a .pipe file may set api_base and api_key_env; pass other transport options"
            " from Python",
        )
    return None


def url_has_credentials(text: str) -> bool:
    """Whether the URL ``text`` carries a user name or password (``user:pw@host``)."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return "@" in text
    return parts.username is not None or parts.password is not None


def _is_http_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 -- raises ValueError for a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class Pipeline(Frozen):
    """A compiled pipeline: nodes in topological order, the output node, budget and holes."""

    name: str
    nodes: tuple[Node, ...]
    output: str
    budget: Budget = Budget()
    switches: tuple[Switch, ...] = ()
    models: tuple[ModelSpec, ...] = ()
    span: Span | None = None

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def switch(self, name: str) -> Switch:
        for switch in self.switches:
            if switch.name == name:
                return switch
        raise KeyError(name)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def fingerprint(self) -> str:
        """sha256 of the pipeline without source positions: stable across formatting.

        Parameters are compared as a set (sorted by name): the order arguments are written
        in does not change what a node does.
        """
        data = strip_spans(self)
        for node in data["nodes"]:
            node["params"] = sorted(node["params"], key=lambda param: param["name"])
        payload = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()


def strip_spans(model: BaseModel) -> Any:
    """``model`` as JSON-compatible data with every ``span`` field removed (for comparisons)."""
    return _strip(model.model_dump(mode="json"))


def _strip(data: Any) -> Any:
    if isinstance(data, dict):
        return {
            k: _strip(v) for k, v in data.items() if k not in ("span", "value_span", "input_spans")
        }
    if isinstance(data, list):
        return [_strip(v) for v in data]
    return data
