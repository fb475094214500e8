"""The options several commands share (``archon.cli.options``): each command's ``--help``
lists them, and every command that takes one declares it the same way."""

from __future__ import annotations

from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from archon.cli import app

runner = CliRunner()

# Every command that takes a shared option, by the words after ``archon``.
TAKES = {
    "--allow-key": (("run",), ("eval",), ("search",)),
    "--timeout": (("run",), ("eval",), ("search",)),
    "--retries": (("run",), ("eval",), ("search",)),
    "--params": (("run",), ("eval",)),
    "--model-path": (("run",), ("eval",), ("serve",)),
    "--seed": (("run",), ("eval",)),
    "--trace": (("run",), ("serve",)),
    "--json": (("models", "list"), ("models", "doctor"), ("cache", "stats")),
}

HELP = {
    "--allow-key": "Confirm that $VAR (named by an api_key_env of the .pipe) may be sent to HOST"
    " (any host without @); repeatable. Also read from $ARCHON_HOME/keys.toml.",
    "--timeout": "Limit of one model call attempt (default 300); connecting gets at most 10 s.",
    "--retries": "Extra attempts after a retryable failure (default 4).",
    "--params": "JSON hole values (e.g. the best.json of a search).",
    "--model-path": "GGUF file to use for every local/... model.",
    "--seed": "Run seed (sampling seeds derive from it).",
    "--trace": "Append one JSON line per model call to this file.",
    "--json": "Print JSON.",
}


def _command(words: tuple[str, ...]) -> Any:
    """The click command of ``archon WORDS`` (typer ships its own click)."""
    command: Any = typer.main.get_group(app)
    for word in words:
        command = command.commands[word]
    return command


def _option(words: tuple[str, ...], flag: str) -> Any:
    for param in _command(words).params:
        if param.param_type_name == "option" and flag in param.opts:
            return param
    raise AssertionError(f"archon {' '.join(words)} has no {flag}")


@pytest.mark.parametrize("flag", sorted(TAKES))
def test_a_shared_option_reads_the_same_in_every_command(flag: str) -> None:
    declared = [_option(words, flag) for words in TAKES[flag]]
    first = declared[0]
    assert first.help == HELP[flag]
    for option in declared[1:]:
        assert (option.opts, option.help, option.default, option.metavar) == (
            first.opts,
            first.help,
            first.default,
            first.metavar,
        )
        assert (option.multiple, option.is_flag, option.nargs) == (
            first.multiple,
            first.is_flag,
            first.nargs,
        )


def test_shared_option_defaults() -> None:
    assert _option(("run",), "--seed").default == 0
    assert _option(("eval",), "--allow-key").multiple
    assert _option(("eval",), "--allow-key").metavar == "VAR[@HOST[:PORT]]"
    assert _option(("search",), "--timeout").metavar == "SECONDS"
    assert _option(("cache", "stats"), "--json").is_flag


WIDE = {"COLUMNS": "200", "TERMINAL_WIDTH": "200"}  # no wrapped help lines


@pytest.mark.parametrize(
    ("words", "flags", "text"),
    [
        (
            ("run",),
            ("--allow-key", "--timeout", "--retries", "--params", "--seed", "--trace"),
            "Run seed (sampling seeds derive from it).",
        ),
        (
            ("eval",),
            ("--allow-key", "--timeout", "--retries", "--params", "--model-path"),
            "GGUF file to use for every local/... model.",
        ),
        (
            ("search",),
            ("--allow-key", "--timeout", "--retries"),
            "Extra attempts after a retryable failure (default 4).",
        ),
        (("models", "list"), ("--json",), "Print JSON."),
    ],
    ids=["run", "eval", "search", "models-list"],
)
def test_help_lists_the_shared_options(
    words: tuple[str, ...], flags: tuple[str, ...], text: str
) -> None:
    result = runner.invoke(app, [*words, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    for flag in flags:
        assert flag in result.output
    assert text in result.output
