"""The top-level facade: every public name resolves lazily and importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import archon


def test_every_public_name_resolves() -> None:
    for name in archon.__all__:
        assert getattr(archon, name) is not None, name


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        archon.no_such_thing  # noqa: B018
    except AttributeError as error:
        assert "no_such_thing" in str(error)
    else:
        raise AssertionError("expected AttributeError")


def test_importing_the_ir_does_not_load_heavy_dependencies() -> None:
    code = (
        "import sys, archon.ir\n"
        "heavy = [m for m in ('litellm', 'optuna', 'llama_cpp', 'networkx') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
