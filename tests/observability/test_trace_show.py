"""``archon trace show``: the tree of a recorded run, its critical path, and its picture."""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archon.cli import app
from archon.ir import Pipeline
from archon.layers.registry import Registry
from archon.observability.timeline import build_run, critical_path, load_run
from archon.runtime import JsonlTrace, run_many, run_sync
from archon.runtime.trace import CallRecord, NodeRecord, TraceFile, TraceReadError, read_run

from .conftest import scripted

PATH = ("other", "merged", "final", "voted", "exit_if_1")


@pytest.fixture
def recorded(tmp_path: Path, traced: Pipeline, registry: Registry) -> Path:
    """The JSONL trace of one scripted run of the traced pipeline."""
    path = tmp_path / "run.jsonl"
    with JsonlTrace(path) as trace:
        run_sync(traced, "What is 2 + 2?", client=scripted(), registry=registry, trace=trace)
    return path


@pytest.fixture
def batch(tmp_path: Path, traced: Pipeline, registry: Registry) -> Path:
    path = tmp_path / "batch.jsonl"

    async def go() -> None:
        with JsonlTrace(path) as trace:
            async for item in run_many(
                traced, ["one", "two", "three"], client=scripted(), registry=registry, trace=trace
            ):
                assert item.ok

    asyncio.run(go())
    return path


def _old(path: Path) -> Path:
    """The same trace as an archon without node lines would have written it."""
    old = path.with_name("old.jsonl")
    lines = [line for line in path.read_text().splitlines() if '"event": "node"' not in line]
    old.write_text("\n".join(lines) + "\n")
    return old


def test_node_lines_are_recorded(recorded: Path) -> None:
    trace = read_run(recorded)
    nodes = {n.node_id: n for n in trace.nodes}
    assert set(nodes) == {"drafts", "other", "merged", "final", "voted", "exit_if_1", "extra"}
    assert nodes["merged"].inputs == ("drafts", "other") and nodes["merged"].kind == "fuse"
    assert nodes["extra"].skipped and nodes["extra"].waits_for == ("exit_if_1",)
    assert nodes["merged"].started_at >= nodes["other"].finished_at
    assert all(n.query_index is None for n in trace.nodes)
    assert len(trace.calls) == 5 and len(trace.stages) == 1


def test_the_tree(recorded: Path) -> None:
    result = CliRunner().invoke(app, ["trace", "show", str(recorded)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("run.jsonl: 1 query, 5 calls")
    assert "query  (" in out and "exit at exit_if_1" in out
    assert "├── drafts (generate)" in out and "2 calls" in out
    assert "openai/small #1" in out and "anthropic/big #0" in out
    assert "exit: leading score 0.333 >= 0.3" in out
    assert "extra (fuse)  skipped by exit_if_1" in out
    assert f"critical path: {' → '.join(PATH)}" in out


def test_the_critical_path_follows_the_slowest_input(recorded: Path) -> None:
    (query,) = load_run(recorded).queries
    assert query.critical_path == PATH
    assert query.node("other").end > query.node("drafts").end  # the slower branch


def test_a_trace_without_node_lines(recorded: Path) -> None:
    old = _old(recorded)
    run = load_run(old)
    assert not run.has_nodes and run.queries[0].critical_path is None
    assert {n.node_id for n in run.queries[0].nodes} == {"drafts", "other", "merged", "final"}
    result = CliRunner().invoke(
        app, ["trace", "show", str(old), "--out", str(old.with_suffix(".png"))]
    )
    assert result.exit_code == 0, result.output
    assert "critical path: unknown" in result.stdout
    assert "stage exit_if_1: exit (leading score 0.333 >= 0.3); skipped extra" in result.stdout
    assert old.with_suffix(".png").stat().st_size > 10_000


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def test_the_png(recorded: Path, tmp_path: Path) -> None:
    out = tmp_path / "pictures" / "run.png"
    result = CliRunner().invoke(app, ["trace", "show", str(recorded), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stderr
    width, height = _png_size(out)
    assert width >= 1000 and 300 <= height <= 1500
    assert 20_000 < out.stat().st_size < 2_000_000


def test_the_html(recorded: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.html"
    result = CliRunner().invoke(app, ["trace", "show", str(recorded), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "<script" not in page
    assert page.count("class='row'") == 7
    assert page.count("node critical") == len(PATH)
    assert "class='exit'" in page and "node skipped" in page


def test_a_batch_and_one_query_of_it(batch: Path, tmp_path: Path) -> None:
    run = load_run(batch)
    assert [q.index for q in sorted(run.queries, key=lambda q: q.index or 0)] == [0, 1, 2]
    assert all(q.critical_path == PATH for q in run.queries)
    whole = CliRunner().invoke(app, ["trace", "show", str(batch), "--calls", "0"])
    assert whole.exit_code == 0 and whole.stdout.count("critical path:") == 3
    assert "openai/small #0" not in whole.stdout
    one = CliRunner().invoke(
        app, ["trace", "show", str(batch), "--query", "1", "--out", str(tmp_path / "q1.png")]
    )
    assert one.exit_code == 0, one.output
    assert "query 1  (" in one.stdout and "query 0" not in one.stdout
    missing = CliRunner().invoke(app, ["trace", "show", str(batch), "--query", "7"])
    assert missing.exit_code == 2 and "queries: 0, 1, 2" in missing.stderr


def test_appended_runs_are_told_apart(tmp_path: Path, traced: Pipeline, registry: Registry) -> None:
    path = tmp_path / "twice.jsonl"
    for _ in range(2):
        with JsonlTrace(path) as trace:
            run_sync(traced, "again", client=scripted(), registry=registry, trace=trace)
    run = load_run(path)
    assert len(run.queries) == 2
    assert all(len(q.calls) == 5 and q.critical_path == PATH for q in run.queries)


def test_bad_inputs(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"event": "node", "node_id": "a"}\n')
    result = CliRunner().invoke(app, ["trace", "show", str(bad)])
    assert result.exit_code == 2 and "bad.jsonl:1: not an archon trace record" in result.stderr
    with pytest.raises(TraceReadError, match=":1:"):
        read_run(bad)
    assert CliRunner().invoke(app, ["trace", "show", str(tmp_path / "none")]).exit_code == 2
    good = tmp_path / "good.jsonl"
    good.write_text("")
    wrong = CliRunner().invoke(app, ["trace", "show", str(good), "--out", str(tmp_path / "x.svg")])
    assert wrong.exit_code == 2 and ".png or an .html" in wrong.stderr
    empty = CliRunner().invoke(app, ["trace", "show", str(good), "--out", str(tmp_path / "x.png")])
    assert empty.exit_code == 3 and "nothing to draw" in empty.stderr


def test_lines_of_later_events_are_passed_over(tmp_path: Path) -> None:
    path = tmp_path / "future.jsonl"
    call = CallRecord(node_id="a", model="m", sample_index=0, prompt_sha256="0" * 64)
    path.write_text(
        call.model_dump_json() + "\n" + json.dumps({"event": "budget", "left": 3}) + "\n"
    )
    assert read_run(path).calls == [call]


def _node(
    node_id: str, start: float, end: float, *inputs: str, waits: tuple[str, ...] = ()
) -> NodeRecord:
    return NodeRecord(
        node_id=node_id, kind="k", started_at=start, finished_at=end, inputs=inputs, waits_for=waits
    )


def test_critical_path_through_a_gate() -> None:
    """A node after a gate waits for the gate's decision as for an input."""
    trace = TraceFile(
        calls=[],
        stages=[],
        nodes=[
            _node("a", 0, 1),
            _node("b", 0, 3),
            _node("gate", 1, 1.5, "a"),
            _node("c", 3, 4, "a", waits=("gate",)),
            _node("d", 3.0, 6, "b", waits=("gate",)),
            _node("e", 6, 7, "c", "d"),
        ],
    )
    (query,) = build_run(trace).queries
    assert query.critical_path == ("b", "d", "e")
    assert critical_path(()) == ()
