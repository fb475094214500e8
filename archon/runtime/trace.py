"""Call traces: one frozen :class:`CallRecord` per model call, written as JSONL.

A record holds the node, model, prompt hash, tokens, latency, cost, cache hit, sample index and
(redacted) error of one single-sample call -- never an API key or auth header, and the prompt
text only when asked for (``--show-prompts``), redacted too.

Beside the calls a trace holds a :class:`StageRecord` per early-exit gate (``"event":
"stage"``) and a :class:`NodeRecord` per node that ran or was skipped (``"event": "node"``:
when it started and finished and which nodes it waited for, so ``archon trace show`` can draw
the run and find its critical path). :func:`read_run` reads all three; lines of an unknown
``event`` (written by a later archon) are passed over.
"""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from archon.errors import ArchonError
from archon.outputs import LineFile
from archon.values import Message

if TYPE_CHECKING:
    from archon.runtime.events import NodeStarted


class TraceWriteError(ArchonError):
    """A trace line cannot be written (a full disk, an I/O error)."""


class TraceReadError(ArchonError, ValueError):
    """A line of a trace file is not a trace record."""


class CallRecord(BaseModel):
    """What one model call did."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    node_id: str
    model: str
    sample_index: int
    prompt_sha256: str
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    usd: float = 0.0
    cache_hit: bool = False
    attempts: int = 1
    error: str | None = None
    query_index: int | None = None
    request_id: str | None = None
    started_at: float = 0.0
    finish_reason: str | None = None
    prompt: tuple[Message, ...] | None = None
    output: str | None = None


class StageRecord(BaseModel):
    """What an early-exit gate decided for one query, written to the trace beside the calls
    (a line with ``"event": "stage"``).

    Attributes:
        node_id: the gate; ``exit``: whether the query stopped there; ``reason``: the
            condition's reading; ``skipped``: the nodes the exit skipped.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event: Literal["stage"] = "stage"
    node_id: str
    exit: bool
    reason: str
    skipped: tuple[str, ...] = ()
    query_index: int | None = None


class NodeRecord(BaseModel):
    """What one node did for one query (a line with ``"event": "node"``).

    Attributes:
        node_id, kind: the node and its layer kind.
        query_index: the query (None for a single ``archon run``).
        started_at, finished_at: wall-clock seconds (``time.time()``) when it began, once
            its inputs were ready, and when it ended; equal for a skipped node.
        inputs: the nodes whose output it read.
        waits_for: the early-exit gates it waited for before starting.
        skipped: an early exit skipped it (it made no call).
        error: why it failed (redacted), when it did.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event: Literal["node"] = "node"
    node_id: str
    kind: str
    query_index: int | None = None
    started_at: float
    finished_at: float
    inputs: tuple[str, ...] = ()
    waits_for: tuple[str, ...] = ()
    skipped: bool = False
    error: str | None = None

    @property
    def seconds(self) -> float:
        return max(0.0, self.finished_at - self.started_at)


@runtime_checkable
class StageSink(Protocol):
    """A trace sink that also records early-exit decisions (optional for sinks)."""

    def record_stage(self, record: StageRecord) -> None: ...


class TraceSink(Protocol):
    """Where call records go. ``include_prompts`` asks the runtime to fill ``prompt``."""

    @property
    def include_prompts(self) -> bool: ...

    def record(self, record: CallRecord) -> None:
        """Receive one record (called from the event loop thread)."""
        ...


class MemoryTrace:
    """Keeps records in a list (tests, ``--show-prompts``)."""

    def __init__(self, *, include_prompts: bool = False) -> None:
        self.records: list[CallRecord] = []
        self.stages: list[StageRecord] = []
        self.nodes: list[NodeRecord] = []
        self._include_prompts = include_prompts

    @property
    def include_prompts(self) -> bool:
        return self._include_prompts

    def record(self, record: CallRecord) -> None:
        self.records.append(record)

    def record_stage(self, record: StageRecord) -> None:
        self.stages.append(record)

    def query_started(self, query_index: int | None, at: float) -> None:
        pass

    def query_finished(self, query_index: int | None, at: float, error: str | None) -> None:
        pass

    def node_started(self, event: NodeStarted) -> None:
        pass

    def node_finished(self, record: NodeRecord) -> None:
        self.nodes.append(record)


class JsonlTrace:
    """Appends one JSON line per call to ``path``, unbuffered (safe to tail).

    A line that cannot be written (a full disk, an I/O error) does not fail the call: the
    file is cut back to its last complete line and closed, nothing more is written, and
    :attr:`error` says what happened (the CLI ends with it). Use as a context manager or call
    :meth:`close`.
    """

    def __init__(self, path: str | Path, *, include_prompts: bool = False) -> None:
        self.path = Path(path)
        self._include_prompts = include_prompts
        self._file: LineFile | None = None
        self._lock = threading.Lock()
        self.error: TraceWriteError | None = None

    @property
    def include_prompts(self) -> bool:
        return self._include_prompts

    def record(self, record: CallRecord) -> None:
        self._write(record)

    def record_stage(self, record: StageRecord) -> None:
        self._write(record)

    def query_started(self, query_index: int | None, at: float) -> None:
        pass

    def query_finished(self, query_index: int | None, at: float, error: str | None) -> None:
        pass

    def node_started(self, event: NodeStarted) -> None:
        pass

    def node_finished(self, record: NodeRecord) -> None:
        self._write(record)

    def _write(self, record: BaseModel) -> None:
        line = json.dumps(record.model_dump(mode="json", exclude_none=True), ensure_ascii=False)
        with self._lock:
            if self.error is not None:
                return
            try:
                if self._file is None:
                    self._file = LineFile(self.path, keep=_size(self.path))
                self._file.append(line.encode("utf-8"))
            except OSError as error:
                self._fail(error)

    def _fail(self, error: OSError) -> None:
        """Remember the first write error and stop writing."""
        written = self._file.lines if self._file is not None else 0
        self.error = TraceWriteError(
            f"cannot write the trace to {self.path}: {error.strerror or error}; the"
            f" {written} complete call records written so far are kept (the rest of this run"
            " is not traced): free space (or fix the disk) and rerun"
        )
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close(sync=False)

    def close(self) -> None:
        """Close the file (a failure to force it to disk becomes :attr:`error`)."""
        with self._lock:
            if self._file is not None:
                try:
                    self._file.close(sync=self.error is None)
                except OSError as error:
                    self._fail(error)
                self._file = None

    def __enter__(self) -> JsonlTrace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _size(path: Path) -> int:
    """The length of ``path`` (0 when absent): a trace is appended to."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def read_trace(path: str | Path) -> list[CallRecord]:
    """Load the call records of a JSONL trace file (stage and node lines are left out: see
    :func:`read_stages`, :func:`read_nodes` and :func:`read_run`)."""
    return read_run(path).calls


def read_stages(path: str | Path) -> list[StageRecord]:
    """Load the early-exit decisions of a JSONL trace file."""
    return read_run(path).stages


def read_nodes(path: str | Path) -> list[NodeRecord]:
    """Load the node lines of a JSONL trace file (empty for traces written before archon
    recorded nodes)."""
    return read_run(path).nodes


class TraceFile(BaseModel):
    """Everything a JSONL trace file holds, each kind of line in file order."""

    model_config = ConfigDict(frozen=True)

    calls: list[CallRecord]
    stages: list[StageRecord]
    nodes: list[NodeRecord]


def read_run(path: str | Path) -> TraceFile:
    """Load the calls, stages and nodes of a JSONL trace file.

    Raises:
        OSError: the file cannot be read. TraceReadError: a line is not a trace record (the
            message names the line).
    """
    calls: list[CallRecord] = []
    stages: list[StageRecord] = []
    nodes: list[NodeRecord] = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                event = data.get("event") if isinstance(data, dict) else None
                if event is None:
                    calls.append(CallRecord.model_validate(data))
                elif event == "stage":
                    stages.append(StageRecord.model_validate(data))
                elif event == "node":
                    nodes.append(NodeRecord.model_validate(data))
            except (ValueError, RecursionError) as error:  # JSON or validation errors
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                raise TraceReadError(
                    f"{path}:{number}: not an archon trace record ({first[:200]})"
                ) from error
    return TraceFile(calls=calls, stages=stages, nodes=nodes)
