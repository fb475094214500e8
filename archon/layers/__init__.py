"""Layer kinds and their registry.

Built-in kinds are the modules of this package that define a concrete :class:`Layer`
subclass (one kind per module); :func:`load_builtin_layers` finds them with ``pkgutil``, so a
new technique really is one new file. Third-party kinds come from the ``archon.layers``
entry-point group through :func:`load_plugins`: :func:`default_registry` (what the CLI and the
public API use when given no registry) calls it once per process, on first use, never at
import time. A plugin that fails to load is skipped with a warning that names it.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

from archon.layers.base import AnyLayer, Layer, LayerContext, LayerParams
from archon.layers.registry import Registry, RegistryError, UnknownLayerKind

__all__ = [
    "AnyLayer",
    "Layer",
    "LayerContext",
    "LayerParams",
    "PluginError",
    "Registry",
    "RegistryError",
    "UnknownLayerKind",
    "builtin_layer_modules",
    "default_registry",
    "layers_in_module",
    "load_builtin_layers",
    "load_plugins",
]

logger = logging.getLogger(__name__)

PLUGIN_GROUP = "archon.layers"
"""The entry-point group third-party layer kinds register under."""

# Modules of this package that hold infrastructure, not a layer kind.
_INFRASTRUCTURE = frozenset({"base", "registry", "common", "prompts", "answers", "sandbox"})


def layers_in_module(module: ModuleType) -> list[type[AnyLayer]]:
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


class PluginError(RegistryError):
    """A layer plugin could not be loaded (import failure, not a Layer, clashing kind)."""


def load_plugins(
    registry: Registry, group: str = PLUGIN_GROUP, *, strict: bool = False
) -> list[str]:
    """Register the kinds of an entry-point group's plugins; returns the kinds added.

    Each entry point of the group (``name = "package.module:Class"`` in a package's
    ``[project.entry-points."archon.layers"]``) names a :class:`Layer` subclass, whose
    ``kind`` is what ``.pipe`` files write. One that cannot be imported, is not a Layer
    class, or clashes with a registered kind is skipped with a warning naming it, so one
    broken package never stops ``archon``; ``strict=True`` raises :class:`PluginError`
    instead (for plugin authors' tests).
    """
    added: list[str] = []
    for entry_point in entry_points(group=group):
        try:
            layer = _plugin_layer(entry_point, group)
            registry.register(layer)
        except Exception as error:  # a plugin may fail in any way while importing
            reason = f"{type(error).__name__}: {error}"
            message = f"layer plugin {_describe(entry_point)} was not loaded: {reason}"
            if strict:
                raise PluginError(message) from error
            logger.warning("%s; its kinds are unavailable (fix or uninstall the package)", message)
            continue
        added.append(layer.kind)
    return added


def _plugin_layer(entry_point: EntryPoint, group: str) -> type[AnyLayer]:
    layer = entry_point.load()
    if not (inspect.isclass(layer) and issubclass(layer, Layer)):
        raise PluginError(f"'{entry_point.value}' in group '{group}' is not a Layer class")
    return layer


def _describe(entry_point: EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    where = f", from {dist.name} {dist.version}" if dist is not None else ""
    return f"'{entry_point.name}' ({entry_point.value}{where})"


@cache
def default_registry() -> Registry:
    """The built-in kinds plus the installed plugins' kinds, loaded once per process.

    Treat it as read-only; ``copy()`` it to extend. Tests that must not see plugins use
    :func:`load_builtin_layers`.
    """
    registry = load_builtin_layers()
    load_plugins(registry)
    return registry
