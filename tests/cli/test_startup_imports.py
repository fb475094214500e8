"""``archon check`` and ``archon fmt`` start without the heavy libraries other commands need.

An editor integration or a pre-commit hook runs them often. Each test runs the real CLI entry
point in a fresh interpreter and reads ``sys.modules`` afterwards: it checks which modules
were imported, not how long that took (timings live in ``bench/cli_startup.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "optuna",
    "litellm",
    "networkx",
    "matplotlib",
    "llama_cpp",
    "aiohttp",
    "numpy",  # the combine kind fits weights with it
    "asyncio",  # only running a pipeline needs an event loop
    "doctest",  # query_tests parses a query's examples with it; it brings unittest and pdb
    "unittest",
    "pdb",
)
EXAMPLES = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "examples").glob("*.pipe"))

PROGRAM = """
import json, sys
sys.argv = ["archon", *json.loads(sys.argv[1])]
from archon.cli import main
try:
    main()
except SystemExit as stop:
    code = stop.code
else:
    code = 0
sys.stdout.write("\\n" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _run(*args: str) -> tuple[object, list[str]]:
    """The exit code of ``archon ARGS`` in a fresh interpreter and every module it imported."""
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, json.dumps(args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(done.stdout.rsplit("\n", 1)[-1])
    return report["code"], report["modules"]


def _modules_after(*args: str) -> tuple[object, set[str]]:
    """The exit code and the top-level packages imported by ``archon ARGS``."""
    code, modules = _run(*args)
    return code, {name.split(".")[0] for name in modules}


@pytest.mark.parametrize(
    "args",
    [
        ("check", "examples/baseline.pipe"),
        ("check", "examples/mixture_of_agents.pipe", "--format", "json"),
        ("check", *EXAMPLES),  # every kind the examples use, each loaded on first use
        ("fmt", "--stdout", "examples/baseline.pipe"),
    ],
    ids=["check", "check-json", "check-examples", "fmt"],
)
def test_compile_commands_import_no_heavy_library(args: tuple[str, ...]) -> None:
    code, imported = _modules_after(*args)
    assert code in (0, None)
    assert "archon" in imported  # the command really ran
    assert sorted(imported.intersection(HEAVY)) == []


def test_the_probe_sees_heavy_imports() -> None:
    """The probe is not blind: ``archon search --help`` loads optuna."""
    _, imported = _modules_after("search", "--help")
    assert "optuna" in imported


def test_check_imports_only_the_kinds_a_file_uses() -> None:
    """Kind modules load on first use: ``mixture_of_agents.pipe`` loads generate and fuse."""
    from archon.layers import builtin_kind_names

    code, modules = _run("check", "examples/mixture_of_agents.pipe")
    assert code in (0, None)
    loaded = {name.rsplit(".", 1)[1] for name in modules if name.startswith("archon.layers.")}
    assert loaded.intersection(builtin_kind_names()) == {"generate", "fuse"}


def test_every_command_is_mapped_to_the_module_that_defines_it() -> None:
    """``main`` imports only the module of the command it runs: the map must stay exact."""
    import typer.main

    from archon.cli import _COMMAND_HOMES, app, build_app, modules_for

    commands = set(typer.main.get_group(app).commands)
    assert commands == set(_COMMAND_HOMES), "add new commands to archon.cli._COMMAND_HOMES"
    for name in sorted(commands):
        partial = typer.main.get_group(build_app(modules_for([name, "--help"])))
        assert name in partial.commands
    assert modules_for(["--help"]) == modules_for([]) == modules_for(["nope"])
    assert len(modules_for(["--help"])) == len({*_COMMAND_HOMES.values()})
