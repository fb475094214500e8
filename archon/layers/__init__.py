"""Layer kinds and their registry.

Built-in kinds are the modules of this package that define a concrete :class:`Layer`
subclass, one kind per module, named after the module (``generate.py`` defines ``generate``);
:func:`load_builtin_layers` lists them with ``pkgutil``, so a new technique really is one new
file. Third-party kinds come from the ``archon.layers`` entry-point group through
:func:`load_plugins`: :func:`default_registry` (what the CLI and the public API use when given
no registry) calls it once per process, on first use, never at import time. A plugin that
fails to load is skipped with a warning that names it.

Kinds are registered by name and their modules imported on first use (see
:mod:`archon.layers.registry`): ``archon check`` imports only the kinds its files use.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import pkgutil
from functools import cache, partial
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

from archon.layers.base import AnyLayer, Layer, LayerContext, LayerParams
from archon.layers.registry import (
    Registry,
    RegistryError,
    UnknownLayerKind,
    check_layer,
    is_kind_name,
)

__all__ = [
    "AnyLayer",
    "Layer",
    "LayerContext",
    "LayerParams",
    "PluginError",
    "Registry",
    "RegistryError",
    "UnknownLayerKind",
    "builtin_kind_names",
    "builtin_layer_modules",
    "default_registry",
    "layers_in_module",
    "load_builtin_layers",
    "load_plugins",
]

logger = logging.getLogger(__name__)

PLUGIN_GROUP = "archon.layers"
"""The entry-point group third-party layer kinds register under."""

# Modules of this package that hold infrastructure, not a layer kind ("sandbox": the old home
# of archon.sandbox, in case a compatibility alias is left there).
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


def builtin_kind_names() -> list[str]:
    """The built-in kinds' names, in order: their modules' names (nothing is imported)."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_") and info.name not in _INFRASTRUCTURE
    )


def builtin_layer_modules() -> list[ModuleType]:
    """Import and return every kind module of this package, in name order."""
    return [importlib.import_module(f"{__name__}.{name}") for name in builtin_kind_names()]


def _builtin_layer(kind: str) -> type[AnyLayer]:
    """Import the module of built-in ``kind`` and return the class it defines for it."""
    module = importlib.import_module(f"{__name__}.{kind}")
    found = [layer for layer in layers_in_module(module) if layer.kind == kind]
    if len(found) != 1:
        raise RegistryError(f"{module.__name__} must define one layer of kind '{kind}': {found}")
    return found[0]


def load_builtin_layers() -> Registry:
    """A new registry holding every built-in kind, each imported on its first lookup."""
    registry = Registry()
    for kind in builtin_kind_names():
        registry.register_lazy(kind, partial(_builtin_layer, kind))
    return registry


class PluginError(RegistryError):
    """A layer plugin could not be loaded (import failure, not a Layer, clashing kind)."""


def load_plugins(
    registry: Registry, group: str = PLUGIN_GROUP, *, strict: bool = False, lazy: bool = False
) -> list[str]:
    """Register the kinds of an entry-point group's plugins; returns the kinds added.

    Each entry point of the group (``name = "package.module:Class"`` in a package's
    ``[project.entry-points."archon.layers"]``) names a :class:`Layer` subclass, whose
    ``kind`` is what ``.pipe`` files write. One that cannot be imported, is not a Layer
    class, or clashes with a registered kind is skipped with a warning naming it, so one
    broken package never stops ``archon``; ``strict=True`` raises :class:`PluginError`
    instead (for plugin authors' tests).

    ``lazy=True`` registers an entry point whose name is a kind's name under that name, and
    imports it on the kind's first lookup (so ``archon check`` pays only for the plugins a
    file uses); a class whose ``kind`` differs from its entry point's name is then refused
    when loaded. Entry points whose package is not installed are reported at once; the other
    failures when the kind is first looked up (or listed). Entry points named otherwise are
    loaded at once, as without ``lazy``.
    """
    added: list[str] = []
    for entry_point in entry_points(group=group):
        try:
            if lazy and is_kind_name(entry_point.name):
                _register_lazily(registry, entry_point, group, strict)
                kind = entry_point.name
            else:
                kind = registry.register(_plugin_layer(entry_point, group)).kind
        except Exception as error:  # a plugin may fail in any way while importing
            _plugin_failed(entry_point, error, strict)
            continue
        added.append(kind)
    return added


def _register_lazily(registry: Registry, entry_point: EntryPoint, group: str, strict: bool) -> None:
    package = entry_point.module.partition(".")[0]
    if importlib.util.find_spec(package) is None:  # looks the package up, runs none of it
        raise ModuleNotFoundError(f"No module named {package!r}", name=package)
    registry.register_lazy(entry_point.name, partial(_load_plugin, entry_point, group, strict))


def _load_plugin(entry_point: EntryPoint, group: str, strict: bool) -> type[AnyLayer] | None:
    """The lazily registered plugin's class, or None after reporting why it is unusable."""
    try:
        layer = _plugin_layer(entry_point, group)
        kind = check_layer(layer)
        if kind != entry_point.name:
            raise PluginError(
                f"its kind is '{kind}'; name the entry point after the kind it provides"
            )
    except Exception as error:  # a plugin may fail in any way while importing
        _plugin_failed(entry_point, error, strict)
        return None
    return layer


def _plugin_failed(entry_point: EntryPoint, error: Exception, strict: bool) -> None:
    reason = f"{type(error).__name__}: {error}"
    message = f"layer plugin {_describe(entry_point)} was not loaded: {reason}"
    if strict:
        raise PluginError(message) from error
    logger.warning("%s; its kinds are unavailable (fix or uninstall the package)", message)


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
    """The built-in kinds plus the installed plugins' kinds, registered once per process.

    Every kind is imported on its first lookup (plugins whose entry point is named after
    their kind, see :func:`load_plugins`). Treat it as read-only; ``copy()`` it to extend.
    Tests that must not see plugins use :func:`load_builtin_layers`.
    """
    registry = load_builtin_layers()
    load_plugins(registry, lazy=True)
    return registry
