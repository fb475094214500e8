"""One CLI vocabulary for the commands that run pipelines (run, eval, search, serve): the
budget, cache, connection and seed options are declared once (``archon.cli.options``), read
the same in every command, travel as one object each (``opt.grouped``), and the old spellings
still work with a warning."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from archon.cli import app
from archon.cli import options as opt

runner = CliRunner()
WIDE = {"COLUMNS": "200", "TERMINAL_WIDTH": "200"}
RUNNERS = ("run", "eval", "search", "serve")

# Which shared option each command takes (the budget fields a command can keep differ).
SHARED: dict[str, tuple[str, ...]] = {
    "--budget-calls": RUNNERS,
    "--budget-tokens": ("run", "eval", "serve"),
    "--budget-usd": RUNNERS,
    "--budget-seconds": ("run", "eval", "search"),
    "--cache": RUNNERS,
    "--bank": RUNNERS,
    "--allow-key": RUNNERS,
    "--timeout": RUNNERS,
    "--retries": RUNNERS,
    "--model-path": RUNNERS,
    "--seed": RUNNERS,
}

# Old spelling -> (command, canonical flag).
DEPRECATED = {
    ("eval", "--max-calls"): "--budget-calls",
    ("eval", "--max-usd"): "--budget-usd",
    ("serve", "--max-calls"): "--budget-calls",
    ("serve", "--max-tokens"): "--budget-tokens",
}


def _command(name: str) -> Any:
    return typer.main.get_group(app).commands[name]


def _option(command: str, flag: str) -> Any:
    for param in _command(command).params:
        if param.param_type_name == "option" and flag in param.opts:
            return param
    raise AssertionError(f"archon {command} has no {flag}")


@pytest.mark.parametrize("flag", sorted(SHARED))
def test_a_shared_option_is_declared_the_same_everywhere(flag: str) -> None:
    first, *rest = [_option(command, flag) for command in SHARED[flag]]
    assert first.help
    for option in rest:
        assert (option.opts, option.secondary_opts, option.help, option.default) == (
            first.opts,
            first.secondary_opts,
            first.help,
            first.default,
        )
        assert (option.metavar, option.multiple, option.is_flag, option.hidden) == (
            first.metavar,
            first.multiple,
            first.is_flag,
            False,
        )
        assert getattr(option, "rich_help_panel", None) == getattr(first, "rich_help_panel", None)


@pytest.mark.parametrize("command", RUNNERS)
def test_help_lists_the_shared_options_with_their_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for flag, commands in SHARED.items():
        if command not in commands:
            continue
        option = _option(command, flag)
        assert flag in text
        assert " ".join(option.help.split())[:60] in text, flag
    for panel in ("Budget (whole command)", "Cache", "Connection"):
        assert panel in result.output


@pytest.mark.parametrize(("command", "old"), sorted(DEPRECATED))
def test_an_old_spelling_is_a_hidden_alias(command: str, old: str) -> None:
    option = _option(command, old)
    assert option.hidden
    assert old not in runner.invoke(app, [command, "--help"], env=WIDE).output


@pytest.fixture
def pipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ARCHON_HOME", str(tmp_path / "home"))
    path = tmp_path / "p.pipe"
    path.write_text('models { m = "fake/m" }\npipeline one { generate(models = [m]) }\n')
    return path


@pytest.mark.parametrize(("command", "old"), sorted(DEPRECATED))
def test_an_old_spelling_still_works_and_warns(command: str, old: str, pipe: Path) -> None:
    # A zero budget is refused before anything runs: the value reached the canonical option.
    args = [str(pipe), "--no-cache", old, "0"]
    if command == "eval":
        args += ["-d", "bigbench/arithmetic"]
    result = runner.invoke(app, [command, *args])
    assert result.exit_code == 2, result.output
    canonical = DEPRECATED[command, old]
    warning = f"warning: {old} is deprecated; use {canonical}"
    assert [line for line in result.stderr.splitlines() if line.startswith(warning)]
    assert canonical in result.stderr  # the error names the canonical flag


def test_an_old_and_a_new_spelling_together_are_refused(pipe: Path) -> None:
    args = [str(pipe), "-d", "bigbench/arithmetic", "--max-calls", "3", "--budget-calls", "4"]
    result = runner.invoke(app, ["eval", *args])
    assert result.exit_code == 2
    assert "give --budget-calls or --max-calls, not both" in result.stderr


def _callbacks(typer_app: typer.Typer, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for info in typer_app.registered_commands:
        name = info.name or (info.callback.__name__ if info.callback else "?")
        yield f"{prefix}{name}", info.callback
    for group in typer_app.registered_groups:
        assert group.typer_instance is not None
        yield from _callbacks(group.typer_instance, f"{prefix}{group.name} ")


def test_no_command_function_takes_more_than_15_parameters() -> None:
    counted = {}
    for name, callback in _callbacks(app):
        body = inspect.unwrap(callback)  # the function itself, not the signature typer sees
        counted[name] = len(inspect.signature(body).parameters)
    assert {"run", "eval", "search", "serve"} <= set(counted)
    assert {name: n for name, n in counted.items() if n > 15} == {}


def test_a_grouped_command_shows_its_groups_as_options() -> None:
    search = inspect.unwrap(_callbacks_by_name()["search"])
    seen = inspect.signature(_callbacks_by_name()["search"]).parameters
    assert "budget" in inspect.signature(search).parameters
    assert "budget" not in seen and "budget__calls" in seen
    assert "budget__tokens" not in seen  # search keeps calls, usd and seconds


def _callbacks_by_name() -> dict[str, Any]:
    return dict(_callbacks(app))


# --- the mechanism on its own -----------------------------------------------------------------


def _tiny() -> tuple[typer.Typer, list[Any]]:
    got: list[Any] = []
    tiny = typer.Typer()

    @tiny.command()
    @opt.grouped
    def go(
        name: Annotated[str, typer.Argument()],
        *,
        budget: Annotated[opt.BudgetFlags, opt.use("calls", "usd", calls="--max-calls")],
        cache: opt.CacheFlags,
        seed: opt.Seed = 0,
    ) -> None:
        got.append((name, budget, cache, seed))

    return tiny, got


def test_grouped_builds_one_object_per_group() -> None:
    tiny, got = _tiny()
    result = runner.invoke(tiny, ["x", "--budget-usd", "0.5", "--no-cache", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert got == [("x", opt.BudgetFlags(usd=0.5), opt.CacheFlags(enabled=False), 3)]


def test_grouped_offers_only_the_chosen_fields() -> None:
    tiny, got = _tiny()
    result = runner.invoke(tiny, ["x", "--budget-tokens", "5"])
    assert result.exit_code == 2 and got == []


def test_grouped_alias_warns_once_and_sets_the_field() -> None:
    tiny, got = _tiny()
    result = runner.invoke(tiny, ["x", "--max-calls", "7"])
    assert result.exit_code == 0, result.output
    assert got[0][1] == opt.BudgetFlags(calls=7)
    warnings = [line for line in result.stderr.splitlines() if "deprecated" in line]
    assert warnings == [
        "warning: --max-calls is deprecated; use --budget-calls"
        " (the old spelling goes in a later release)"
    ]


def test_grouped_rejects_a_group_field_it_does_not_have() -> None:
    def bad(*, budget: Annotated[opt.BudgetFlags, opt.use("dollars")]) -> None:
        pass

    with pytest.raises(TypeError, match="dollars"):
        opt.grouped(bad)


def test_budget_items_are_the_limits_set() -> None:
    assert opt.BudgetFlags(calls=3, seconds=1.5).items() == {"calls": 3, "seconds": 1.5}
    assert opt.BudgetFlags().items() == {}
