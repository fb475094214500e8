"""The ``archon`` command line. Parsing and printing only: each command calls the library.

Exit codes: 0 ok, 1 diagnostics with errors, 2 usage error, 3 runtime failure or budget
exhausted.
"""

from __future__ import annotations

import importlib

import typer

from archon.cli import compile_cmds

app = typer.Typer(
    name="archon",
    help="Inference-time architectures for LLMs: check, format, draw, run and search .pipe files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Command groups register themselves on the app; the optional ones are skipped when their
# module is not part of this installation.
_COMMAND_MODULES = (
    "archon.cli.runtime_cmds",
    "archon.cli.eval_cmds",
    "archon.cli.search_cmds",
    "archon.cli.interop_cmds",
    "archon.cli.serve_cmds",
)


def _register_all() -> None:
    compile_cmds.register(app)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            continue
        module.register(app)


_register_all()


def main() -> None:
    """Console entry point."""
    app()
