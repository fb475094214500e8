"""The installed distribution's version: the one place that asks the package metadata."""

from __future__ import annotations

from importlib import metadata


def package_version() -> str:
    """The version of the installed ``archon-pipe`` (``"unknown"`` when it is not installed,
    e.g. the sources on ``PYTHONPATH``)."""
    try:
        return metadata.version("archon-pipe")
    except metadata.PackageNotFoundError:
        return "unknown"
