"""``archon models doctor``: can the embedded engine run here, and how fast?

Prints the CPU and the SIMD features it advertises, the installed llama.cpp engine and the
instruction sets it was built with, whether the engine guard passes (a decode in a child
process, so a binary this CPU cannot run is reported, not fatal), and the decode speed of the
default model, and which code sandbox runs model-written code here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from archon.cli.common import EXIT_RUNTIME, usage_error
from archon.runtime.clients.local import models as local_models
from archon.runtime.clients.local.client import available_threads
from archon.runtime.clients.local.engine_check import (
    FEATURES_OF_INTEREST,
    EngineGuard,
    cpu_flags,
    cpu_model,
    engine_libraries,
    engine_version,
    run_check,
)
from archon.runtime.home import archon_home
from archon.sandbox import confine

_SANDBOX_TEXT = {
    "namespace": "bubblewrap (namespace)",
    "fallback": "fallback (weaker: an audit hook only, not a security boundary; "
    f"{confine.FALLBACK_ENV}=fallback is set)",
    "unavailable": "unavailable (install bubblewrap: `apt-get install bubblewrap`)",
}


def sandbox_line() -> str:
    """The ``code sandbox:`` line: the isolation model-written code runs under here."""
    return f"code sandbox:  {_SANDBOX_TEXT[confine.mode()]}"


def _report(model: str, tokens: int) -> dict[str, Any]:
    home = archon_home()
    flags = cpu_flags()
    report: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_features": [f for f in FEATURES_OF_INTEREST if f in flags],
        "threads": available_threads(),
        "engine": engine_version(),
        "engine_libraries": [str(p) for p in engine_libraries()],
        "model": model,
        "sandbox": confine.mode(),
    }
    if report["engine"] == "not installed":
        report["guard"] = {"ok": False, "detail": "llama-cpp-python is not installed"}
        return report
    known = local_models.known_model(model)
    if not local_models.is_installed(known, home):
        report["guard"] = {
            "ok": False,
            "detail": f"{known.name} is not installed: run `archon models pull {known.name}`",
        }
        return report
    path = local_models.model_path(known.name, home)
    result = run_check(path, threads=available_threads(), tokens=tokens)
    report["engine_build"] = result.system_info.strip()
    report["guard"] = {"ok": result.ok, "detail": result.detail, "signal": result.signal_name}
    report["tokens_per_s"] = round(result.tokens_per_s, 1) if result.tokens_per_s else None
    if result.ok or result.signal_name is not None:
        EngineGuard(home).remember(result)  # a fresh verdict replaces the remembered one
    return report


def _print(report: dict[str, Any]) -> None:
    guard = report["guard"]
    lines = [
        f"cpu:           {report['cpu']} ({report['threads']} threads available)",
        f"cpu features:  {' '.join(report['cpu_features']) or '(none)'}",
        f"engine:        llama-cpp-python {report['engine']}",
    ]
    if report["engine_libraries"]:
        lines.append(f"libraries:     {Path(report['engine_libraries'][0]).parent}")
    if report.get("engine_build"):
        lines.append(f"engine build:  {report['engine_build']}")
    lines.append(f"guard:         {'ok' if guard['ok'] else 'FAILED'} — {guard['detail']}")
    if report.get("tokens_per_s") is not None:
        lines.append(
            f"decode speed:  {report['tokens_per_s']} tokens/s ({report['model']}, greedy)"
        )
    lines.append(sandbox_line())
    typer.echo("\n".join(lines))


def doctor_command(model: str, tokens: int, output_format: str) -> None:
    """Run the checks, print them, and exit 3 when the engine cannot run here."""
    try:
        report = _report(model, tokens)
    except local_models.ModelPullError as e:  # an unknown model name
        usage_error(str(e))
    if output_format == "json":
        typer.echo(json.dumps(report, indent=2))
    else:
        _print(report)
    if not report["guard"]["ok"]:
        raise typer.Exit(EXIT_RUNTIME)
