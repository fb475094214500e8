"""Call traces: one frozen :class:`CallRecord` per model call, written as JSONL.

A record holds the node, model, prompt hash, tokens, latency, cost, cache hit, sample index and
(redacted) error of one single-sample call -- never an API key or auth header, and the prompt
text only when asked for (``--show-prompts``), redacted too.
"""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from archon.errors import ArchonError
from archon.outputs import LineFile
from archon.values import Message


class TraceWriteError(ArchonError):
    """A trace line cannot be written (a full disk, an I/O error)."""


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
        self._include_prompts = include_prompts

    @property
    def include_prompts(self) -> bool:
        return self._include_prompts

    def record(self, record: CallRecord) -> None:
        self.records.append(record)

    def record_stage(self, record: StageRecord) -> None:
        self.stages.append(record)


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
    """Load the call records of a JSONL trace file (stage lines are left out: see
    :func:`read_stages`)."""
    return [r for r in _read(path) if isinstance(r, CallRecord)]


def read_stages(path: str | Path) -> list[StageRecord]:
    """Load the early-exit decisions of a JSONL trace file."""
    return [r for r in _read(path) if isinstance(r, StageRecord)]


def _read(path: str | Path) -> list[CallRecord | StageRecord]:
    records: list[CallRecord | StageRecord] = []
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            data = json.loads(line)
            is_stage = isinstance(data, dict) and data.get("event") == "stage"
            kind = StageRecord if is_stage else CallRecord
            records.append(kind.model_validate(data))
    return records
