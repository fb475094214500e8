"""`archon lsp` on the command line: registered, and a clear message without the extra."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from archon.cli import app


def test_lsp_is_a_command() -> None:
    result = CliRunner().invoke(app, ["lsp", "--help"])
    assert result.exit_code == 0 and "language server" in result.output


def test_a_missing_pygls_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['pygls'] = None; sys.argv = ['archon', 'lsp'];"
        " from archon.cli import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "`lsp` extra" in result.stderr and "archon-pipe[lsp]" in result.stderr
