"""``archon lsp``: the ``.pipe`` language server, on stdin/stdout (for editors)."""

from __future__ import annotations

from typing import Annotated

import typer

from archon.cli.common import source_limits, usage_error

LSP_EXTRA_HINT = (
    "the language server needs the `lsp` extra (pygls): "
    "pip install 'archon-pipe[lsp]'  (in a checkout: scripts/install.sh dev,lsp)"
)


def register(app: typer.Typer) -> None:
    """Add ``archon lsp`` to ``app``."""
    app.command()(lsp)


def lsp(
    stdio: Annotated[
        bool, typer.Option("--stdio", help="Talk over stdin/stdout (the default and only mode).")
    ] = True,
    debounce: Annotated[
        float,
        typer.Option(help="Seconds without a keystroke before a changed file is re-checked."),
    ] = 0.05,
) -> None:
    """Run the .pipe language server on stdin/stdout: diagnostics as you type, hover,
    completion, go-to-definition, outline and formatting. Editors start it; see
    docs/editors.md."""
    if debounce < 0 or debounce > 10:
        usage_error("--debounce must be between 0 and 10 seconds")
    limits = source_limits()
    try:
        import lsprotocol  # noqa: F401
        import pygls  # noqa: F401
    except ModuleNotFoundError:
        usage_error(LSP_EXTRA_HINT)
    from archon.lsp.server import serve

    serve(limits, debounce)
