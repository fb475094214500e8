"""The layer registry: kind name -> ``Layer`` class, with did-you-mean lookups.

A kind is registered either as its class (:meth:`Registry.register`) or by name with a loader
that imports its module on first use (:meth:`Registry.register_lazy`). The built-in kinds and
the entry-point plugins are registered lazily, so compiling a pipeline imports only the kinds
it uses (``archon check`` must not pay for numpy, asyncio or the sandbox of kinds it never
sees), while :meth:`Registry.kinds` still names every kind without importing any.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator

from archon.errors import ArchonError, suggest
from archon.layers.base import AnyLayer

_KIND_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

LayerLoader = Callable[[], "type[AnyLayer] | None"]
"""Imports a lazily registered kind's class; ``None`` means the kind turned out unavailable
(the loader has already said why, e.g. a broken plugin's warning), and the registry drops it."""


class RegistryError(ArchonError):
    """A layer class could not be registered (duplicate or malformed)."""


class UnknownLayerKind(ArchonError):
    """No layer kind of this name is registered."""

    def __init__(self, kind: str, hint: str | None) -> None:
        self.kind = kind
        self.hint = hint
        super().__init__(f"unknown layer kind '{kind}'" + (f"; {hint}" if hint else ""))


def is_kind_name(name: object) -> bool:
    """Whether ``name`` can be a kind's name (snake_case: what ``.pipe`` files write)."""
    return isinstance(name, str) and _KIND_NAME.match(name) is not None


def check_layer(layer: type[AnyLayer]) -> str:
    """The kind ``layer`` declares; raises :class:`RegistryError` if it cannot be registered."""
    kind = getattr(layer, "kind", None)
    if not isinstance(kind, str) or not is_kind_name(kind):
        raise RegistryError(f"{layer.__name__}.kind must be a snake_case name, got {kind!r}")
    for attribute in ("Params", "produces"):
        if not hasattr(layer, attribute):
            raise RegistryError(f"layer kind '{kind}' does not declare {attribute}")
    return kind


class Registry:
    """Maps kind names to layer classes. Fill it at start-up, then only read it.

    Reading may import: a kind registered with :meth:`register_lazy` is loaded the first time
    it is looked up (``kind in registry``, :meth:`get`, iteration); :meth:`kinds` never loads.
    Loading is serialised by a lock, so threads may share a registry.
    """

    def __init__(self, layers: Iterable[type[AnyLayer]] = ()) -> None:
        self._layers: dict[str, type[AnyLayer]] = {}
        self._pending: dict[str, LayerLoader] = {}
        self._lock = threading.RLock()
        for layer in layers:
            self.register(layer)

    def register(self, layer: type[AnyLayer]) -> type[AnyLayer]:
        """Add a layer class; rejects duplicate and non-snake_case kind names."""
        kind = check_layer(layer)
        with self._lock:
            registered = self._resolve(kind)  # a lazy entry of that name is loaded to compare
            if registered is not None and registered is not layer:
                raise RegistryError(f"layer kind '{kind}' is already registered")
            self._layers[kind] = layer
        return layer

    def register_lazy(self, kind: str, load: LayerLoader) -> None:
        """Add ``kind`` by name; ``load()`` imports its class on the kind's first lookup.

        The class ``load`` returns must declare this ``kind`` (else :class:`RegistryError` at
        that lookup); a loader that returns ``None`` makes the kind unknown from then on.
        Rejects names that are not snake_case or are already registered.
        """
        if not is_kind_name(kind):
            raise RegistryError(f"a layer kind must be a snake_case name, got {kind!r}")
        with self._lock:
            if kind in self._layers or kind in self._pending:
                raise RegistryError(f"layer kind '{kind}' is already registered")
            self._pending[kind] = load

    def get(self, kind: str) -> type[AnyLayer]:
        """The class for ``kind``; raises :class:`UnknownLayerKind` with a suggestion."""
        layer = self._resolve(kind)
        if layer is None:
            raise UnknownLayerKind(kind, suggest(kind, self.kinds()))
        return layer

    def __contains__(self, kind: object) -> bool:
        return isinstance(kind, str) and self._resolve(kind) is not None

    def __iter__(self) -> Iterator[type[AnyLayer]]:
        """Every kind's class, by name (this loads every lazily registered kind)."""
        loaded = (self._resolve(kind) for kind in self.kinds())
        return iter([layer for layer in loaded if layer is not None])

    def kinds(self) -> tuple[str, ...]:
        """The names of the registered kinds, sorted, without loading any.

        A lazily registered kind whose loading later fails drops out of this list.
        """
        with self._lock:
            return tuple(sorted({*self._layers, *self._pending}))

    def copy(self) -> Registry:
        """A registry with the same kinds; kinds not loaded yet stay lazy in the copy."""
        other = Registry()
        with self._lock:
            other._layers = dict(self._layers)
            other._pending = dict(self._pending)
        return other

    def _resolve(self, kind: str) -> type[AnyLayer] | None:
        """The class registered as ``kind``, loading a lazy entry; None if there is none."""
        layer = self._layers.get(kind)
        if layer is not None:
            return layer
        with self._lock:
            layer = self._layers.get(kind)  # another thread may have loaded it meanwhile
            load = self._pending.get(kind)
            if layer is not None or load is None:
                return layer
            layer = load()  # an exception leaves the entry pending: the next lookup retries
            if layer is not None and check_layer(layer) != kind:
                raise RegistryError(
                    f"layer kind '{kind}' was registered lazily, but its loader returned"
                    f" {layer.__name__}, whose kind is '{layer.kind}'"
                )
            del self._pending[kind]
            if layer is not None:
                self._layers[kind] = layer
            return layer
