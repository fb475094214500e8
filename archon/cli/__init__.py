"""The ``archon`` command line. Parsing and printing only: each command calls the library.

Exit codes: 0 ok, 1 diagnostics with errors, 2 usage error, 3 runtime failure or budget
exhausted.

Commands live in modules that register themselves on a Typer app. ``main`` loads only the
module of the command being run (``archon check`` never imports the runtime, eval or search,
so an editor or a pre-commit hook can call it often); ``--help``, a mistyped command and the
module attribute ``app`` (used by tests and embedders) load them all.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from functools import cache

import typer

_HELP = "Inference-time architectures for LLMs: check, format, draw, run and search .pipe files."

# Command groups register themselves on the app; the optional ones are skipped when their
# module is not part of this installation.
_COMMAND_MODULES = (
    "archon.cli.compile_cmds",
    "archon.cli.runtime_cmds",
    "archon.cli.eval_cmds",
    "archon.cli.search_cmds",
    "archon.cli.interop_cmds",
    "archon.cli.serve_cmds",
    "archon.cli.lsp_cmds",
    "archon.cli.trace_cmds",
)

# Which module defines each command, so that ``main`` imports only that one. A command missing
# here still works: an unknown name loads every module.
_COMMAND_HOMES = {
    "check": "archon.cli.compile_cmds",
    "fmt": "archon.cli.compile_cmds",
    "graph": "archon.cli.compile_cmds",
    "kinds": "archon.cli.compile_cmds",
    "run": "archon.cli.runtime_cmds",
    "models": "archon.cli.runtime_cmds",
    "cache": "archon.cli.runtime_cmds",
    "eval": "archon.cli.eval_cmds",
    "search": "archon.cli.search_cmds",
    "search-report": "archon.cli.search_cmds",
    "import-archon": "archon.cli.interop_cmds",
    "export-archon": "archon.cli.interop_cmds",
    "serve": "archon.cli.serve_cmds",
    "lsp": "archon.cli.lsp_cmds",
    "trace": "archon.cli.trace_cmds",
}


def build_app(modules: Sequence[str] = _COMMAND_MODULES) -> typer.Typer:
    """A Typer app with the commands of ``modules`` (all of them by default)."""
    app = typer.Typer(
        name="archon",
        help=_HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            continue
        module.register(app)
    return app


@cache
def _full_app() -> typer.Typer:
    return build_app()


def __getattr__(name: str) -> typer.Typer:
    # ``from archon.cli import app``: every command, built on first use.
    if name == "app":
        return _full_app()
    raise AttributeError(f"module 'archon.cli' has no attribute {name!r}")


def modules_for(args: Sequence[str]) -> tuple[str, ...]:
    """The command modules needed to run ``args`` (the command line after ``archon``).

    The compile commands are always there: with a single command Typer would run it without
    its name, so ``archon eval FILE`` would no longer parse.
    """
    home = _COMMAND_HOMES.get(args[0]) if args else None
    if home is None:
        return _COMMAND_MODULES
    return tuple(dict.fromkeys((_COMMAND_MODULES[0], home)))


def main() -> None:
    """Console entry point."""
    build_app(modules_for(sys.argv[1:]))()
