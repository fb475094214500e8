"""Output files: a path that is not a regular file is refused (never replaced, never
blocked on), outputs are written atomically, and a full disk under ``--records`` or
``--trace`` ends in one error line, exit 3, with every complete line kept."""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

import archon.cli.eval_cmds as eval_cmds
import archon.cli.runtime_cmds as runtime_cmds
from archon.cli import app
from archon.eval.records import read_records
from archon.outputs import output_problem, write_atomic
from archon.runtime.clients.fake import ScriptedClient
from archon.runtime.trace import read_trace

PIPE = 'models { m = "fake/m" }\npipeline one { generate(models = [m]) }\n'
ENOSPC = "No space left on device"


@pytest.fixture(autouse=True)
def fake_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHON_HOME", str(tmp_path / "home"))
    for module in (eval_cmds, runtime_cmds):
        monkeypatch.setattr(module, "make_client", lambda *_: ScriptedClient(lambda _: "4"))


@pytest.fixture
def pipe(tmp_path: Path) -> Path:
    path = tmp_path / "one.pipe"
    path.write_text(PIPE)
    return path


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A FIFO with a reader held open, so that code opening it for writing cannot block."""
    path = tmp_path / "pipe.fifo"
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        yield path
    finally:
        os.close(reader)


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(arg) for arg in args])


def error_lines(result: Result) -> list[str]:
    assert "Traceback" not in result.output
    return [line for line in result.stderr.splitlines() if line.startswith("error")]


def full_disk(monkeypatch: pytest.MonkeyPatch, target: Path, allowed: int) -> None:
    """Let ``allowed`` writes to ``target`` through, then write half of each and fail."""
    real = os.write
    seen = {"writes": 0}

    def write(fd: int, data: bytes | memoryview) -> int:
        try:
            name = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            name = ""
        if name != str(target):
            return real(fd, data)
        seen["writes"] += 1
        if seen["writes"] <= allowed:
            return real(fd, data)
        real(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, ENOSPC)

    monkeypatch.setattr(os, "write", write)


# --- output paths ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        lambda pipe, out: ("graph", pipe, "-o", out),
        lambda pipe, out: ("export-archon", pipe, "-o", out),
        lambda pipe, out: ("eval", pipe, "-d", "bigbench/arithmetic", "--limit", "1",
                           "--no-cache", "--out", out),
        lambda pipe, out: ("eval", pipe, "-d", "bigbench/arithmetic", "--limit", "1",
                           "--no-cache", "--records", out),
        lambda pipe, out: ("run", pipe, "-q", "hi", "--no-cache", "--trace", out),
    ],
)  # fmt: skip
def test_a_fifo_is_refused_and_left_alone(
    pipe: Path, fifo: Path, command: Callable[[Path, Path], tuple[str | Path, ...]]
) -> None:
    result = invoke(*command(pipe, fifo))
    assert result.exit_code == 2, result.output
    [line] = error_lines(result)
    assert str(fifo) in line and "not a regular file" in line
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_devices_fifos_and_folders_are_not_output_files(tmp_path: Path) -> None:
    unread = tmp_path / "unread.fifo"
    os.mkfifo(unread)  # no reader: opening it for writing would block
    assert "not a regular file" in (output_problem(unread) or "")
    assert "not a regular file" in (output_problem(Path("/dev/null")) or "")
    assert "directory" in (output_problem(tmp_path) or "")
    assert output_problem(tmp_path / "new.json") is None
    with pytest.raises(OSError, match="not a regular file"):
        write_atomic(unread, "x")
    assert stat.S_ISFIFO(unread.stat().st_mode)


def test_outputs_are_written_through_a_synced_temporary_file(
    pipe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "archon.json"
    out.write_text("old\n")
    out.chmod(0o640)
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync") or real_fsync(fd))

    def replace(source: str | Path, target: str | Path) -> None:
        calls.append("replace")
        assert Path(source).parent == out.parent and Path(target) == out
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    result = invoke("export-archon", pipe, "-o", out)
    assert result.exit_code == 0, result.output
    assert calls[:2] == ["fsync", "replace"]
    assert json.loads(out.read_text())
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_failed_output_write_keeps_the_old_file(
    pipe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "graph.dot"
    out.write_text("old\n")

    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync)
    result = invoke("graph", pipe, "-o", out)
    assert result.exit_code == 3
    assert error_lines(result) == [
        f"error: --output {out} could not be written: Input/output error"
    ]
    assert out.read_text() == "old\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# --- full disk under --records and --trace -----------------------------------------------------


def test_a_full_disk_under_records_keeps_complete_records(
    pipe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = tmp_path / "items.jsonl"
    args = ("eval", pipe, "-d", "bigbench/arithmetic", "--limit", "3", "--no-cache")
    with monkeypatch.context() as patch:
        full_disk(patch, records, allowed=1)
        result = invoke(*args, "--records", records)
    assert result.exit_code == 3, result.output
    assert error_lines(result) == [
        f"error: cannot write records to {records}: {ENOSPC}; the 1 complete records written"
        " so far are kept: free space (or fix the disk) and rerun with --resume"
    ]
    data = records.read_bytes()
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert len(read_records(records)[0]) == 1
    resumed = invoke(*args, "--records", records, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert len(read_records(records)[0]) == 3


def test_a_full_disk_under_trace_is_one_error_line(
    pipe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = tmp_path / "calls.jsonl"
    queries = tmp_path / "queries.jsonl"
    queries.write_text('"a"\n"b"\n"c"\n')
    full_disk(monkeypatch, trace, allowed=1)
    result = invoke("run", pipe, "--input", queries, "--no-cache", "--trace", trace)
    assert result.exit_code == 3, result.output
    assert error_lines(result) == [
        f"error: cannot write the trace to {trace}: {ENOSPC}; the 1 complete call records"
        " written so far are kept (the rest of this run is not traced): free space (or fix"
        " the disk) and rerun"
    ]
    assert trace.read_bytes().count(b"\n") == 1 and trace.read_bytes().endswith(b"\n")
    assert len(read_trace(trace)) == 1
