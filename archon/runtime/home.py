"""The archon home: the folder of model files, the call cache and ``keys.toml``.

``$ARCHON_HOME``, or ``~/.cache/archon``, read at call time (never at import), so a test or a
script that sets the variable sees its own home.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_FILE = "cache.sqlite"
"""The persistent call cache's file name in the home."""


def archon_home() -> Path:
    """``$ARCHON_HOME`` or ``~/.cache/archon``."""
    value = os.environ.get("ARCHON_HOME")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "archon"


def cache_path() -> Path:
    """Where the persistent call cache lives: ``archon_home() / CACHE_FILE``."""
    return archon_home() / CACHE_FILE
