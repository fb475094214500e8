"""Layer kinds and their registry.

Built-in kinds are the modules of this package that define a concrete :class:`Layer`
subclass (one kind per module); :func:`load_builtin_layers` finds them with ``pkgutil``, so a
new technique really is one new file. Third-party kinds are loaded explicitly with
:func:`load_plugins` from the ``archon.layers`` entry-point group, never at import time.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import cache
from importlib.metadata import entry_points
from types import ModuleType

from archon.layers.base import Layer, LayerContext, LayerParams
from archon.layers.registry import Registry, RegistryError, UnknownLayerKind

__all__ = [
    "Layer",
    "LayerContext",
    "LayerParams",
    "Registry",
    "RegistryError",
    "UnknownLayerKind",
    "builtin_layer_modules",
    "default_registry",
    "layers_in_module",
    "load_builtin_layers",
    "load_plugins",
]

# Modules of this package that hold infrastructure, not a layer kind.
_INFRASTRUCTURE = frozenset({"base", "registry", "common", "prompts", "parsing", "sandbox"})


def layers_in_module(module: ModuleType) -> list[type[Layer]]:
    """Concrete Layer subclasses defined (not merely imported) in ``module``."""
    return [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, Layer)
        and obj.__module__ == module.__name__
        and not inspect.isabstract(obj)
    ]


def builtin_layer_modules() -> list[ModuleType]:
    """Import and return every kind module of this package, in name order."""
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_") and info.name not in _INFRASTRUCTURE
    )
    return [importlib.import_module(f"{__name__}.{name}") for name in names]


def load_builtin_layers() -> Registry:
    """A new registry holding every built-in kind."""
    registry = Registry()
    for module in builtin_layer_modules():
        for layer in layers_in_module(module):
            registry.register(layer)
    return registry


def load_plugins(registry: Registry, group: str = "archon.layers") -> list[str]:
    """Register third-party kinds from an entry-point group; returns the kinds added."""
    added: list[str] = []
    for entry_point in entry_points(group=group):
        layer = entry_point.load()
        if not (inspect.isclass(layer) and issubclass(layer, Layer)):
            raise RegistryError(
                f"entry point '{entry_point.name}' in group '{group}' is not a Layer class"
            )
        registry.register(layer)
        added.append(layer.kind)
    return added


@cache
def default_registry() -> Registry:
    """The built-in kinds, loaded once. Treat it as read-only; ``copy()`` it to extend."""
    return load_builtin_layers()
