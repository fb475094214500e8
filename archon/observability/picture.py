"""A picture of a run: one lane per node, a bar per model call, the critical path marked.

:func:`draw` writes a PNG (matplotlib, imported here only) or a self-contained HTML page
(no script, hover a bar for its numbers) from a :class:`~archon.observability.timeline.RunView`.
Time runs left to right in seconds from the first node's start; every query of the trace gets
its lanes (a long evaluation is cut at :data:`MAX_LANES` lanes; pick one query instead).

In a lane, the pale bar is the node (from when its inputs were ready to when it finished) and
the solid bars are its calls, coloured by model, stacked when they ran at the same time;
a hatched call was a cache hit, a red-edged one failed. Nodes on the critical path have a thick
red outline and arrows between them; an early exit is a dashed line at the gate, and the nodes
it skipped are greyed lanes.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from archon.errors import ArchonError
from archon.observability.timeline import NodeView, QueryView, RunView
from archon.runtime.trace import CallRecord

MAX_LANES = 60
"""The most lanes drawn (the first queries that fit; the picture says what was left out)."""
FORMATS = (".png", ".html", ".htm")
CRITICAL = "#d62728"


class PictureError(ArchonError):
    """The picture cannot be drawn (an unknown format, nothing to draw)."""


@dataclass(frozen=True)
class Lane:
    """One row of the picture: a node of a query, its calls packed into sub-rows."""

    query: QueryView
    node: NodeView
    label: str
    rows: tuple[tuple[CallRecord, int], ...]
    depth: int
    critical: bool


def lanes(run: RunView, max_lanes: int = MAX_LANES) -> tuple[list[Lane], int]:
    """The lanes to draw and how many queries were left out to stay within ``max_lanes``."""
    many = len(run.queries) > 1
    found: list[Lane] = []
    shown = 0
    for query in run.queries:
        if found and len(found) + len(query.nodes) > max_lanes:
            break
        shown += 1
        path = set(query.critical_path or ())
        for node in query.nodes:
            label = node.node_id + (f" ({node.kind})" if node.kind else "")
            if node.skipped:
                label += " skipped"
            if many:
                label = f"q{'-' if query.index is None else query.index} {label}"
            rows, depth = _pack(node.calls)
            found.append(Lane(query, node, label, rows, depth, node.node_id in path))
    return found, len(run.queries) - shown


def _pack(calls: Sequence[CallRecord]) -> tuple[tuple[tuple[CallRecord, int], ...], int]:
    """Each call with a sub-row such that calls in one sub-row do not overlap."""
    ends: list[float] = []
    placed = []
    for call in sorted(calls, key=lambda c: c.started_at):
        row = next((k for k, end in enumerate(ends) if end <= call.started_at + 1e-9), None)
        if row is None:
            row = len(ends)
            ends.append(0.0)
        ends[row] = call.started_at + call.latency_s
        placed.append((call, row))
    return tuple(placed), max(1, len(ends))


def summary(run: RunView) -> str:
    """One line: queries, calls, tokens, cost, cache hits, wall time."""
    parts = [
        f"{len(run.queries)} quer{'y' if len(run.queries) == 1 else 'ies'}",
        f"{len(run.calls)} calls",
        f"{run.tokens_in:,} tokens in / {run.tokens_out:,} out",
        f"${run.usd:.4f}",
        f"{run.cache_hits} cache hits",
        f"{run.seconds:.2f} s",
    ]
    return ", ".join(parts)


def draw(run: RunView, out: Path, *, title: str | None = None) -> int:
    """Write the picture of ``run`` to ``out`` (``.png`` or ``.html``); returns the number
    of queries left out."""
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise PictureError(f"{out}: the picture is a .png or an .html file (got '{suffix}')")
    if not run.queries or not any(q.nodes for q in run.queries):
        raise PictureError("the trace holds no call and no node: nothing to draw")
    found, left_out = lanes(run)
    heading = title or "archon run"
    if suffix == ".png":
        _png(run, found, left_out, heading, out)
    else:
        out.write_text(_html(run, found, left_out, heading), encoding="utf-8")
    return left_out


def _models(found: Sequence[Lane]) -> list[str]:
    return sorted({call.model for lane in found for call, _ in lane.rows})


def _note(run: RunView, left_out: int) -> str:
    notes = []
    if not run.has_nodes:
        notes.append("critical path unknown: this trace has no node lines (lanes from calls)")
    if left_out:
        notes.append(f"{left_out} more queries not drawn (archon trace show --query N)")
    return "; ".join(notes)


def _png(run: RunView, found: list[Lane], left_out: int, title: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    origin = run.start
    span = max(run.seconds, 1e-3)
    models = _models(found)
    palette = plt.get_cmap("tab10")
    colour = {model: palette(k % 10) for k, model in enumerate(models)}
    height = max(3.0, 0.55 * len(found) + 1.8)
    figure, axes = plt.subplots(figsize=(13, height))
    row_of: dict[tuple[int, str], int] = {}
    for y, lane in enumerate(found):
        row_of[(id(lane.query), lane.node.node_id)] = y
        node = lane.node
        start, width = node.start - origin, max(node.seconds, span * 0.002)
        face = "#eeeeee" if node.skipped else "#dbe6f4"
        axes.add_patch(
            Rectangle(
                (start, y - 0.42),
                width,
                0.84,
                facecolor=face,
                edgecolor=CRITICAL if lane.critical else "#8fa6c4",
                linewidth=2.4 if lane.critical else 0.8,
                zorder=1,
            )
        )
        sub = 0.72 / lane.depth
        for call, row in lane.rows:
            bottom = y - 0.36 + row * sub
            axes.add_patch(
                Rectangle(
                    (call.started_at - origin, bottom + sub * 0.08),
                    max(call.latency_s, span * 0.002),
                    sub * 0.84,
                    facecolor=colour[call.model],
                    alpha=0.45 if call.cache_hit else 0.95,
                    hatch="///" if call.cache_hit else None,
                    edgecolor=CRITICAL if call.error else "none",
                    linewidth=1.2 if call.error else 0,
                    zorder=2,
                )
            )
        axes.text(
            node.end - origin + span * 0.008,
            y,
            _node_numbers(node),
            va="center",
            ha="left",
            fontsize=8,
            color="#555555",
            zorder=3,
        )
    for query in {id(lane.query): lane.query for lane in found}.values():
        _mark_path(axes, query, row_of, origin)
        rows = [y for (key, _), y in row_of.items() if key == id(query)]
        for stage in query.stages:
            if not stage.exit or (id(query), stage.node_id) not in row_of:
                continue
            at = query.node(stage.node_id).end - origin
            top, bottom = min(rows) - 0.5, max(rows) + 0.45
            axes.vlines(at, top, bottom, colors="#7f7f7f", linestyles="--", linewidth=1, zorder=0)
            axes.text(at, top, f" exit at {stage.node_id}", fontsize=8, color="#555555", va="top")
    axes.set_yticks(range(len(found)), [lane.label for lane in found], fontsize=9)
    axes.set_ylim(len(found) - 0.4, -0.9)
    axes.set_xlim(-span * 0.01, span * 1.22)
    axes.set_xlabel("seconds from the start of the run")
    axes.grid(axis="x", color="#e5e5e5", zorder=0)
    axes.set_axisbelow(True)
    axes.set_title(f"{title}\n{summary(run)}", fontsize=10, loc="left")
    handles = [Patch(facecolor=colour[m], label=m) for m in models[:8]]
    handles.append(Patch(facecolor="#dbe6f4", edgecolor="#8fa6c4", label="node"))
    handles.append(Patch(facecolor="white", edgecolor="#555555", hatch="///", label="cache hit"))
    if run.has_nodes:
        handles.append(Patch(facecolor="white", edgecolor=CRITICAL, lw=2, label="critical path"))
    axes.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.005, 1.0),
        fontsize=8,
        frameon=False,
    )
    note = _note(run, left_out)
    if note:
        figure.text(0.01, 0.005, note, fontsize=8, color="#555555", va="bottom")
    figure.tight_layout(rect=(0, 0.03 if note else 0, 1, 1))
    figure.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(figure)


def _mark_path(
    axes: object, query: QueryView, row_of: dict[tuple[int, str], int], origin: float
) -> None:
    """Arrows between consecutive nodes of ``query``'s critical path."""
    path = query.critical_path or ()
    for before, after in itertools.pairwise(path):
        if (id(query), before) not in row_of or (id(query), after) not in row_of:
            continue
        first, second = query.node(before), query.node(after)
        axes.annotate(  # type: ignore[attr-defined]
            "",
            xy=(second.start - origin, row_of[(id(query), after)]),
            xytext=(first.end - origin, row_of[(id(query), before)]),
            arrowprops={"arrowstyle": "->", "color": CRITICAL, "lw": 1.4},
            zorder=4,
        )


def _node_numbers(node: NodeView) -> str:
    if node.skipped:
        return "skipped"
    parts = [f"{node.seconds:.2f} s"]
    if node.calls:
        parts.append(f"{len(node.calls)} call{'s' if len(node.calls) != 1 else ''}")
        parts.append(f"{node.tokens_in + node.tokens_out:,} tok")
        if node.usd:
            parts.append(f"${node.usd:.4f}")
        if node.cache_hits:
            parts.append(f"{node.cache_hits} cached")
    if node.error or node.errors:
        parts.append("failed" if node.error else f"{node.errors} errors")
    return " · ".join(parts)


_CSS = """
body{font:13px system-ui,sans-serif;margin:16px;color:#222}
h1{font-size:16px;margin:0 0 4px}.sum{color:#555;margin-bottom:12px}
.row{display:flex;align-items:center;height:30px;border-bottom:1px solid #f0f0f0}
.label{width:260px;flex:none;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;
font-family:ui-monospace,monospace;font-size:12px}
.track{position:relative;flex:1;height:26px}
.node{position:absolute;top:1px;height:24px;background:#dbe6f4;border:1px solid #8fa6c4;
box-sizing:border-box}
.node.skipped{background:#eee;border-color:#ccc}
.node.critical{border:3px solid #d62728}
.call{position:absolute;box-sizing:border-box;border-radius:2px}
.call.hit{opacity:.45;background-image:repeating-linear-gradient(45deg,#fff0 0 3px,#fff8 3px 6px)}
.call.err{border:2px solid #d62728}
.nums{position:absolute;top:6px;font-size:11px;color:#666;white-space:nowrap}
.exit{position:absolute;top:0;bottom:0;border-left:2px dashed #888}
.axis{display:flex;color:#777;font-size:11px}.axis .track{height:16px}
.tick{position:absolute;transform:translateX(-50%)}
.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-2px}
.note{color:#777;margin-top:10px}
"""


def _html(run: RunView, found: list[Lane], left_out: int, title: str) -> str:
    origin = run.start
    span = max(run.seconds, 1e-3) * 1.2

    def pct(seconds: float) -> str:
        return f"{100 * seconds / span:.3f}%"

    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    models = _models(found)
    colour = {model: colours[k % len(colours)] for k, model in enumerate(models)}
    esc = html.escape
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1><div class='sum'>{esc(summary(run))}</div>",
        "<div class='legend'>",
        *(f"<span><i style='background:{colour[m]}'></i>{esc(m)}</span>" for m in models),
        "<span><i style='background:#dbe6f4;border:1px solid #8fa6c4'></i>node</span>",
        "<span><i style='border:3px solid #d62728'></i>critical path</span></div>",
    ]
    step = _tick_step(span)
    ticks = "".join(
        f"<span class='tick' style='left:{pct(k * step)}'>{k * step:g} s</span>"
        for k in range(int(span / step) + 1)
    )
    out.append(f"<div class='axis'><div class='label'></div><div class='track'>{ticks}</div></div>")
    exits = {(id(q), s.node_id) for q in run.queries for s in q.stages if s.exit}
    for lane in found:
        node = lane.node
        classes = (
            "node" + (" skipped" if node.skipped else "") + (" critical" if lane.critical else "")
        )
        tip = f"{node.node_id}: {_node_numbers(node)}"
        if node.inputs:
            tip += f"; after {', '.join(node.inputs)}"
        parts = [
            f"<div class='{classes}' title='{esc(tip)}' style='left:{pct(node.start - origin)};"
            f"width:{pct(max(node.seconds, span * 0.002))}'></div>"
        ]
        sub = 22 / lane.depth
        for call, row in lane.rows:
            kind = "call" + (" hit" if call.cache_hit else "") + (" err" if call.error else "")
            call_tip = (
                f"{call.model} #{call.sample_index}: {call.latency_s:.2f} s, {call.tokens_in} in /"
                f" {call.tokens_out} out, ${call.usd:.5f}"
                + (", cache hit" if call.cache_hit else "")
                + (f", error: {call.error}" if call.error else "")
            )
            parts.append(
                f"<div class='{kind}' title='{esc(call_tip)}' style='left:"
                f"{pct(call.started_at - origin)};width:{pct(max(call.latency_s, span * 0.002))};"
                f"top:{2 + row * sub:.1f}px;height:{sub - 2:.1f}px;"
                f"background-color:{colour[call.model]}'></div>"
            )
        parts.append(
            f"<span class='nums' style='left:calc({pct(node.end - origin)} + 6px)'>"
            f"{esc(_node_numbers(node))}</span>"
        )
        if (id(lane.query), node.node_id) in exits:
            parts.append(f"<div class='exit' style='left:{pct(node.end - origin)}'></div>")
        out.append(
            f"<div class='row'><div class='label' title='{esc(lane.label)}'>{esc(lane.label)}</div>"
            f"<div class='track'>{''.join(parts)}</div></div>"
        )
    note = _note(run, left_out)
    if note:
        out.append(f"<div class='note'>{esc(note)}</div>")
    out.append("</body></html>")
    return "\n".join(out)


def _tick_step(span: float) -> float:
    for step in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600):
        if span / step <= 12:
            return float(step)
    return 1200.0
