"""The layer registry: kind name -> ``Layer`` class, with did-you-mean lookups."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from archon.errors import ArchonError, suggest
from archon.layers.base import AnyLayer

_KIND_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class RegistryError(ArchonError):
    """A layer class could not be registered (duplicate or malformed)."""


class UnknownLayerKind(ArchonError):
    """No layer kind of this name is registered."""

    def __init__(self, kind: str, hint: str | None) -> None:
        self.kind = kind
        self.hint = hint
        super().__init__(f"unknown layer kind '{kind}'" + (f"; {hint}" if hint else ""))


class Registry:
    """Maps kind names to layer classes. Fill it at start-up, then only read it."""

    def __init__(self, layers: Iterable[type[AnyLayer]] = ()) -> None:
        self._layers: dict[str, type[AnyLayer]] = {}
        for layer in layers:
            self.register(layer)

    def register(self, layer: type[AnyLayer]) -> type[AnyLayer]:
        """Add a layer class; rejects duplicate and non-snake_case kind names."""
        kind = getattr(layer, "kind", None)
        if not isinstance(kind, str) or not _KIND_NAME.match(kind):
            raise RegistryError(f"{layer.__name__}.kind must be a snake_case name, got {kind!r}")
        if kind in self._layers and self._layers[kind] is not layer:
            raise RegistryError(f"layer kind '{kind}' is already registered")
        for attribute in ("Params", "produces"):
            if not hasattr(layer, attribute):
                raise RegistryError(f"layer kind '{kind}' does not declare {attribute}")
        self._layers[kind] = layer
        return layer

    def get(self, kind: str) -> type[AnyLayer]:
        """The class for ``kind``; raises :class:`UnknownLayerKind` with a suggestion."""
        try:
            return self._layers[kind]
        except KeyError:
            raise UnknownLayerKind(kind, suggest(kind, self._layers)) from None

    def __contains__(self, kind: object) -> bool:
        return kind in self._layers

    def __iter__(self) -> Iterator[type[AnyLayer]]:
        return iter(self._layers[k] for k in sorted(self._layers))

    def kinds(self) -> tuple[str, ...]:
        return tuple(sorted(self._layers))

    def copy(self) -> Registry:
        return Registry(self._layers.values())
