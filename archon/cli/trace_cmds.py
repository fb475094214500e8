"""``archon trace show FILE``: a recorded run as a tree, and as a picture with ``--out``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from archon.cli.common import EXIT_RUNTIME, check_output_path, require_file, usage_error

if TYPE_CHECKING:  # imported by the command when it runs
    from archon.observability.timeline import NodeView, RunView
    from archon.runtime.trace import CallRecord

trace_app = typer.Typer(help="Read the JSONL traces that --trace writes.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``archon trace show`` to ``app``."""
    app.add_typer(trace_app, name="trace")


@trace_app.command("show")
def show(
    file: Annotated[
        Path,
        typer.Argument(help="A JSONL trace (archon run --trace FILE, archon serve --trace FILE)."),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help="Also draw a timeline: run.png or run.html (one lane per node, a bar per"
            " call, the critical path marked).",
        ),
    ] = None,
    query: Annotated[
        int | None,
        typer.Option(
            "--query",
            metavar="N",
            help="Only query N (of run --input, or choice N of a served request).",
        ),
    ] = None,
    calls: Annotated[
        int,
        typer.Option(
            "--calls",
            metavar="N",
            help="Calls listed per node (0: none; the node's totals are always shown).",
        ),
    ] = 8,
) -> None:
    """Print a recorded run as a tree: query -> node -> calls, with tokens, cost, cache hits,
    latency and the stages an early exit skipped; --out draws it."""
    from archon.observability.picture import FORMATS, PictureError, draw
    from archon.observability.timeline import RunView, load_run
    from archon.runtime.trace import TraceReadError

    require_file(file, "a JSONL trace")
    if calls < 0:
        usage_error("--calls must be 0 or more")
    if out is not None:
        if out.suffix.lower() not in FORMATS:
            usage_error(f"--out {out}: the picture is a .png or an .html file")
        check_output_path(out, "--out")
    try:
        run = load_run(file)
    except OSError as error:
        usage_error(f"{file}: cannot read it ({error.strerror or error})")
    except UnicodeDecodeError:
        usage_error(f"{file}: not UTF-8 text, not a JSONL trace")
    except TraceReadError as error:
        usage_error(str(error))
    if query is not None:
        chosen = tuple(q for q in run.queries if q.index == query)
        if not chosen:
            known = sorted({q.index for q in run.queries if q.index is not None})
            shown = ", ".join(map(str, known[:20])) or "none (a single run)"
            usage_error(f"--query {query}: the trace has no such query (queries: {shown})")
        calls_of = tuple(c for q in chosen for c in q.calls)
        run = RunView(chosen, run.has_nodes, calls_of)
    for line in tree_lines(run, file.name, calls):
        typer.echo(line)
    if out is not None:
        try:
            left_out = draw(run, out, title=f"archon trace show {file.name}")
        except PictureError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(EXIT_RUNTIME) from None
        except OSError as error:
            typer.echo(f"error: --out {out} could not be written: {error}", err=True)
            raise typer.Exit(EXIT_RUNTIME) from None
        more = f" ({left_out} queries left out: use --query N)" if left_out else ""
        typer.echo(f"wrote {out}{more}", err=True)


def tree_lines(run: RunView, name: str, max_calls: int = 8) -> list[str]:
    """The tree ``archon trace show`` prints, one string per line."""
    from archon.observability.picture import summary

    lines = [f"{name}: {summary(run)}"]
    if not run.queries:
        lines.append("(no calls and no nodes)")
        return lines
    origin = run.start
    for query in run.queries:
        title = "query" if query.index is None else f"query {query.index}"
        facts = [f"{query.seconds:.2f} s", f"{len(query.calls)} calls"]
        if query.exited_at is not None:
            facts.append(f"exit at {query.exited_at}")
        lines.append(f"{title}  ({', '.join(facts)})")
        stages = {s.node_id: s for s in query.stages}
        skipped_by = {n: s.node_id for s in query.stages if s.exit for n in s.skipped}
        for k, node in enumerate(query.nodes):
            last = k == len(query.nodes) - 1
            branch, stem = ("└── ", "    ") if last else ("├── ", "│   ")
            label = node.node_id + (f" ({node.kind})" if node.kind else "")
            if node.skipped:
                gate = skipped_by.get(node.node_id)
                lines.append(f"{branch}{label}  skipped" + (f" by {gate}" if gate else ""))
                continue
            when = f"{node.start - origin:.2f} → {node.end - origin:.2f} s"
            lines.append(f"{branch}{label}  {when}  {_numbers(node)}")
            stage = stages.get(node.node_id)
            if stage is not None:
                verdict = "exit" if stage.exit else "go on"
                lines.append(f"{stem}    {verdict}: {stage.reason}")
            if node.error:
                lines.append(f"{stem}    error: {node.error}")
            shown = node.calls[:max_calls]
            hidden = len(node.calls) - len(shown)
            for j, call in enumerate(shown):
                twig = "└── " if j == len(shown) - 1 and not hidden else "├── "
                lines.append(f"{stem}{twig}{_call(call, origin)}")
            if hidden and max_calls:
                lines.append(f"{stem}└── ... {hidden} more call{'s' if hidden != 1 else ''}")
        for stage in query.stages:  # gates without a node line (an old trace)
            if all(stage.node_id != n.node_id for n in query.nodes):
                verdict = "exit" if stage.exit else "go on"
                skipped = f"; skipped {', '.join(stage.skipped)}" if stage.skipped else ""
                lines.append(f"stage {stage.node_id}: {verdict} ({stage.reason}){skipped}")
        if query.critical_path is None:
            lines.append(
                "critical path: unknown (this trace has no node lines: lanes come from calls)"
            )
        elif query.critical_path:
            first = query.node(query.critical_path[0])
            final = query.node(query.critical_path[-1])
            length = final.end - first.start
            lines.append(f"critical path: {' → '.join(query.critical_path)}  ({length:.2f} s)")
    return lines


def _numbers(node: NodeView) -> str:
    parts = [f"{node.seconds:.2f} s"]
    if node.calls:
        parts.append(f"{len(node.calls)} call{'s' if len(node.calls) != 1 else ''}")
        parts.append(f"{node.tokens_in:,} in / {node.tokens_out:,} out")
        parts.append(f"${node.usd:.4f}")
        if node.cache_hits:
            parts.append(f"{node.cache_hits} cache hit{'s' if node.cache_hits != 1 else ''}")
        if node.errors:
            parts.append(f"{node.errors} failed")
    return "  ".join(parts)


def _call(call: CallRecord, origin: float) -> str:
    start = call.started_at - origin
    parts = [
        f"{call.model} #{call.sample_index}",
        f"{start:.2f} → {start + call.latency_s:.2f} s",
        f"{call.tokens_in:,} in / {call.tokens_out:,} out",
        f"${call.usd:.4f}",
    ]
    if call.cache_hit:
        parts.append("cache hit")
    if call.attempts > 1:
        parts.append(f"{call.attempts} attempts")
    if call.error:
        parts.append(f"error: {call.error}")
    return "  ".join(parts)
