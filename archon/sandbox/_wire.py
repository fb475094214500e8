"""Plain values on the wire between archon and the sandbox, and their canonical text.

Only plain values cross: ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``,
``bytes``, ``bytearray``, :class:`~decimal.Decimal`, :class:`~fractions.Fraction`, ``list``,
``tuple``, ``dict``, ``set`` and ``frozenset``, nested, each recognised with ``type(v) is ...``
(never ``isinstance``: a subclass can override ``__eq__``, ``__iter__`` or ``__repr__``).
Anything else, and anything nested deeper than :data:`MAX_DEPTH`, becomes an
:class:`Opaque` placeholder that equals nothing but itself.

The wire form is JSON made of tagged lists, e.g. ``["t", [["i", "1"], ["s", "a"]]]`` for
``(1, "a")``. :func:`decode` is strict: anything but the exact form :func:`encode` writes is a
:class:`WireError`, so bytes written by a candidate can at worst be a wrong value.

This module imports only the standard library: its source also runs inside the sandbox.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

MAX_DEPTH = 64
"""Containers nested deeper than this are opaque (this also ends self-referencing lists)."""

HARNESS_ERROR = "harness error: "
"""How the message of a test that the harness itself could not carry out begins (an error
outcome, never a verdict on the candidate; no exception type name has a space)."""

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")
_HEX_CHARS = frozenset("0123456789abcdef")
_TAGS: dict[type, str] = {list: "l", tuple: "t", set: "S", frozenset: "F"}
_CONTAINERS = (list, tuple, dict, set, frozenset)


class WireError(ValueError):
    """Bytes that are not a value :func:`encode` could have written."""


class Opaque:
    """Stands for a value that is not plain; its repr names the type. It cannot be compared
    or used as a condition (``TypeError``), so no test can pass on it -- only identity and
    ``is None`` checks work."""

    __slots__ = ("type_name",)
    __hash__ = object.__hash__

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<unrepresentable {self.type_name}>"

    def _refuse(self, *args: object) -> bool:
        raise TypeError(f"{self!r} cannot be compared or tested for truth")

    __eq__ = __ne__ = __bool__ = _refuse


def type_name(value: object) -> str:
    """A short, safe name for the type of ``value`` (letters, digits, ``_`` and ``.``)."""
    name = type.__dict__["__name__"].__get__(type(value), type)
    return clean_name(name)


def clean_name(name: object) -> str:
    """``name`` if it is a short identifier-like string, else ``"object"``."""
    if type(name) is not str or not name or len(name) > 80 or not set(name) <= _NAME_CHARS:
        return "object"
    return name


def encode(value: Any, depth: int = 0) -> list[Any]:
    """The wire form of ``value``; non-plain parts become ``["u", type name]``."""
    kind = type(value)
    if value is None:
        return ["n"]
    if kind is bool:
        return ["b", 1 if value else 0]
    if kind is int:
        return ["i", format(value, "x")]
    if kind is float:
        return ["f", float.__repr__(value)]
    if kind is str:
        return ["s", value]
    if kind is bytes:
        return ["y", bytes.hex(value)]
    if kind in _NUMBERS:
        return _NUMBERS[kind](value)
    if kind is bytearray:
        return ["Y", bytearray.hex(value)]
    if kind not in _CONTAINERS or depth >= MAX_DEPTH:
        return ["u", type_name(value)]
    if kind is dict:
        pairs = dict.items(value)
        return ["d", [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in pairs]]
    return [_TAGS[kind], [encode(item, depth + 1) for item in kind.__iter__(value)]]


def _encode_complex(value: complex) -> list[Any]:
    real, imag = complex.__getattribute__(value, "real"), complex.__getattribute__(value, "imag")
    return ["c", [float.__repr__(real), float.__repr__(imag)]]


def _encode_decimal(value: Decimal) -> list[Any]:
    return ["D", Decimal.__str__(value)]


def _encode_fraction(value: Fraction) -> list[Any]:
    numerator, denominator = Fraction.as_integer_ratio(value)
    return ["Q", [format(numerator, "x"), format(denominator, "x")]]


_NUMBERS: dict[type, Callable[[Any], list[Any]]] = {
    complex: _encode_complex,
    Decimal: _encode_decimal,
    Fraction: _encode_fraction,
}


def has_opaque(wire: Any) -> bool:
    """Whether a wire form written by :func:`encode` holds an unrepresentable part."""
    if wire[0] == "u":
        return True
    if wire[0] == "d":
        return any(has_opaque(k) or has_opaque(v) for k, v in wire[1])
    return wire[0] in ("l", "t", "S", "F") and any(has_opaque(item) for item in wire[1])


def opaque_name(wire: Any) -> str | None:
    """The type name of the first unrepresentable part of a wire form, or None."""
    if wire[0] == "u":
        return str(wire[1])
    if wire[0] == "d":
        parts = [part for pair in wire[1] for part in pair]
    elif wire[0] in ("l", "t", "S", "F"):
        parts = wire[1]
    else:
        return None
    for part in parts:
        name = opaque_name(part)
        if name is not None:
            return name
    return None


def decode(wire: object, depth: int = 0) -> object:
    """The value of a wire form; :class:`WireError` for anything :func:`encode` cannot write."""
    if type(wire) is not list or not wire or type(wire[0]) is not str:
        raise WireError("not a tagged value")
    tag, rest = wire[0], wire[1:]
    if tag == "n" and not rest:
        return None
    if len(rest) != 1:
        raise WireError(f"tag {tag[:8]!r} needs one payload")
    payload = rest[0]
    if tag in _SCALARS:
        return _SCALARS[tag](payload)
    if depth >= MAX_DEPTH or type(payload) is not list:
        raise WireError("bad container")
    if tag == "d":
        return _decode_dict(payload, depth)
    items = [decode(item, depth + 1) for item in payload]
    if tag == "l":
        return items
    if tag == "t":
        return tuple(items)
    if tag == "S":
        return _hashable_set(items)
    if tag == "F":
        return frozenset(_hashable_set(items))
    raise WireError(f"unknown tag {tag[:8]!r}")


def _bool(payload: object) -> bool:
    if type(payload) is not int or payload not in (0, 1):
        raise WireError("bad bool")
    return payload == 1


def _int(payload: object) -> int:
    if type(payload) is not str:
        raise WireError("bad int")
    digits = payload.removeprefix("-")
    if not digits or not set(digits) <= _HEX_CHARS:
        raise WireError("bad int")
    return int(payload, 16)


def _float(payload: object) -> float:
    if type(payload) is not str or len(payload) > 40:
        raise WireError("bad float")
    try:
        value = float(payload)
    except ValueError:
        raise WireError("bad float") from None
    if float.__repr__(value) != payload:  # only the canonical spelling
        raise WireError("bad float")
    return value


def _str(payload: object) -> str:
    if type(payload) is not str:
        raise WireError("bad str")
    return payload


def _bytes(payload: object) -> bytes:
    if type(payload) is not str or not set(payload) <= _HEX_CHARS or len(payload) % 2:
        raise WireError("bad bytes")
    return bytes.fromhex(payload)


def _bytearray(payload: object) -> bytearray:
    return bytearray(_bytes(payload))


def _complex(payload: object) -> complex:
    if type(payload) is not list or len(payload) != 2:
        raise WireError("bad complex")
    return complex(_float(payload[0]), _float(payload[1]))


def _decimal(payload: object) -> Decimal:
    if type(payload) is not str or len(payload) > 10_000:
        raise WireError("bad decimal")
    try:
        value = Decimal(payload)
    except ArithmeticError:  # decimal.InvalidOperation
        raise WireError("bad decimal") from None
    if str(value) != payload:  # only the canonical spelling
        raise WireError("bad decimal")
    return value


def _fraction(payload: object) -> Fraction:
    if type(payload) is not list or len(payload) != 2:
        raise WireError("bad fraction")
    numerator, denominator = _int(payload[0]), _int(payload[1])
    if denominator <= 0:
        raise WireError("bad fraction")
    value = Fraction(numerator, denominator)
    if value.as_integer_ratio() != (numerator, denominator):  # only lowest terms
        raise WireError("bad fraction")
    return value


def _opaque(payload: object) -> Opaque:
    return Opaque(clean_name(payload))


_SCALARS: dict[str, Any] = {
    "b": _bool,
    "i": _int,
    "f": _float,
    "s": _str,
    "y": _bytes,
    "Y": _bytearray,
    "c": _complex,
    "D": _decimal,
    "Q": _fraction,
    "u": _opaque,
}


def _hashable_set(items: list[object]) -> set[object]:
    try:
        return set(items)
    except TypeError:
        raise WireError("unhashable set item") from None


def _decode_dict(payload: list[Any], depth: int) -> dict[object, object]:
    result: dict[object, object] = {}
    for pair in payload:
        if type(pair) is not list or len(pair) != 2:
            raise WireError("bad dict item")
        key = decode(pair[0], depth + 1)
        try:
            result[key] = decode(pair[1], depth + 1)
        except TypeError:
            raise WireError("unhashable dict key") from None
    return result


def canonical(value: Any) -> str:
    """Deterministic text of a decoded value: Python-literal-like, floats by ``repr``, dict
    items sorted by key text, set items sorted by their text, opaque parts as
    ``<unrepresentable TYPE>``."""
    kind = type(value)
    if value is None or kind in (bool, float, complex, str, bytes, bytearray, Decimal):
        return repr(value)
    if kind is Fraction:
        return f"Fraction({canonical(value.numerator)}, {canonical(value.denominator)})"
    if kind is int:
        try:
            return repr(value)
        except ValueError:  # more digits than int -> str allows
            return hex(value)
    if kind is list:
        return "[" + ", ".join(canonical(v) for v in value) + "]"
    if kind is tuple:
        parts = [canonical(v) for v in value]
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
    if kind is dict:
        pairs = sorted((canonical(k), canonical(v)) for k, v in value.items())
        return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    if kind is set:
        parts = sorted(canonical(v) for v in value)
        return "{" + ", ".join(parts) + "}" if parts else "set()"
    if kind is frozenset:
        parts = sorted(canonical(v) for v in value)
        return "frozenset({" + ", ".join(parts) + "})" if parts else "frozenset()"
    if kind is Opaque:
        return repr(value)
    return f"<unrepresentable {type_name(value)}>"
