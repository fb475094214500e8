"""Options that several commands take, declared once so that their flags and help read the
same everywhere (``from archon.cli import options as opt``; ``seed: opt.Seed = 0``).

Each alias is an ``Annotated`` type for a command parameter; the parameter's default stays in
the signature. This module imports nothing but typer: ``archon check`` loads it too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

AllowKey = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-key",
        metavar="VAR[@HOST[:PORT]]",
        help="Confirm that $VAR (named by an api_key_env of the .pipe) may be sent to HOST"
        " (any host without @); repeatable. Also read from $ARCHON_HOME/keys.toml.",
    ),
]
"""``--allow-key``: key grants for the models the command reaches (see ``Connection``)."""

Timeout = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        help="Limit of one model call attempt (default 300); connecting gets at most 10 s.",
    ),
]
"""``--timeout``: the per-attempt limit of a model call."""

Retries = Annotated[
    int | None,
    typer.Option("--retries", help="Extra attempts after a retryable failure (default 4)."),
]
"""``--retries``: extra attempts after a retryable model-call failure."""

Params = Annotated[
    Path | None, typer.Option(help="JSON hole values (e.g. the best.json of a search).")
]
"""``--params``: a JSON file of hole values for a single pipeline."""

ModelPath = Annotated[Path | None, typer.Option(help="GGUF file to use for every local/... model.")]
"""``--model-path``: one GGUF file that serves every ``local/...`` model."""

Seed = Annotated[int, typer.Option(help="Run seed (sampling seeds derive from it).")]
"""``--seed``: the run seed of ``run`` and ``eval``."""

Trace = Annotated[
    Path | None, typer.Option(help="Append one JSON line per model call to this file.")
]
"""``--trace``: a JSONL file that gets one line per model call."""

Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
"""``--json`` of the small listing commands (models, cache)."""

Banks = Annotated[
    list[Path] | None,
    typer.Option(
        "--bank",
        metavar="FILE",
        help="A bank of calls (archon cache export) to draw on before calling a model;"
        " repeatable. Only calls it lacks are paid for.",
    ),
]
"""``--bank``: candidate banks the call cache consults for keys it lacks."""
