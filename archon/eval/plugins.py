"""Loading third-party dataset families and metrics from entry-point groups.

Mirrors :func:`archon.layers.load_plugins`: each entry point of a group names one object; one
that cannot be imported or is of the wrong type is skipped with a warning naming the plugin
(entry-point name, target and distribution), so one broken package never stops ``archon``;
``strict=True`` raises :class:`PluginError` instead (for plugin authors' tests).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

from archon.errors import ArchonError

__all__ = ["DATASETS_GROUP", "METRICS_GROUP", "PluginError", "describe", "load_group"]

logger = logging.getLogger(__name__)

DATASETS_GROUP = "archon.datasets"
"""The entry-point group third-party dataset families register under."""

METRICS_GROUP = "archon.metrics"
"""The entry-point group third-party metrics register under."""


class PluginError(ArchonError):
    """A dataset-family or metric plugin could not be loaded."""


def describe(entry_point: EntryPoint) -> str:
    """``'name' (module:attr, from dist version)``: how a warning names a plugin."""
    dist = getattr(entry_point, "dist", None)
    where = f", from {dist.name} {dist.version}" if dist is not None else ""
    return f"'{entry_point.name}' ({entry_point.value}{where})"


def load_group(
    group: str,
    what: str,
    add: Callable[[EntryPoint, object], str],
    *,
    strict: bool = False,
) -> list[str]:
    """Load every entry point of ``group`` and hand it to ``add``; returns the names added.

    Args:
        group: the entry-point group (:data:`DATASETS_GROUP`, :data:`METRICS_GROUP`).
        what: what a plugin provides, for messages (``"metric"``, ``"dataset family"``).
        add: registers the loaded object and returns the name it was registered under;
            raises (any exception) when the object is unusable.
        strict: raise :class:`PluginError` instead of warning and skipping.
    """
    added: list[str] = []
    for entry_point in entry_points(group=group):
        try:
            name = add(entry_point, entry_point.load())
        except Exception as error:  # a plugin may fail in any way while importing
            reason = f"{type(error).__name__}: {error}"
            message = f"{what} plugin {describe(entry_point)} was not loaded: {reason}"
            if strict:
                raise PluginError(message) from error
            logger.warning("%s; it is unavailable (fix or uninstall the package)", message)
            continue
        added.append(name)
    return added
