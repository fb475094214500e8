"""Where lark may cache the analysed ``.pipe`` grammar between processes.

Building the LALR tables takes a few hundred milliseconds (seconds when ``interegular`` is
installed: lark then checks every pair of terminals for collisions); loading them from lark's
cache takes a few. ``archon check`` runs from editors and pre-commit hooks, so the tables are
cached, keyed by lark on the grammar text, the options and the lark and Python versions.

The cache is a pickle, so it lives only in a directory that belongs to the current user and
that nobody else can write; otherwise nothing is cached and the grammar is analysed anew.
"""

from __future__ import annotations

import getpass
import os
import stat
import tempfile
from pathlib import Path


def grammar_cache_path() -> str | bool:
    """A file path for ``Lark(cache=...)``, or False when no private directory is available."""
    try:
        directory = Path(tempfile.gettempdir()) / f"archon-{getpass.getuser()}"
        directory.mkdir(mode=0o700, exist_ok=True)
        info = directory.lstat()
    except (OSError, KeyError):  # getuser raises KeyError without a passwd entry
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return False
    getuid = getattr(os, "getuid", None)
    if getuid is not None and info.st_uid != getuid():
        return False
    return str(directory / "pipe-grammar.lark-cache")
