"""Call traces: one frozen :class:`CallRecord` per model call, written as JSONL.

A record holds the node, model, prompt hash, tokens, latency, cost, cache hit, sample index and
(redacted) error of one single-sample call -- never an API key or auth header, and the prompt
text only when asked for (``--show-prompts``), redacted too.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from archon.values import Message


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
    """Appends one JSON line per call to ``path``; flushes each line (safe to tail).

    Use as a context manager or call :meth:`close`.
    """

    def __init__(self, path: str | Path, *, include_prompts: bool = False) -> None:
        self.path = Path(path)
        self._include_prompts = include_prompts
        self._file: IO[str] | None = None
        self._lock = threading.Lock()

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
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
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
            if '"event":"stage"' in line.replace(" ", ""):
                records.append(StageRecord.model_validate_json(line))
            else:
                records.append(CallRecord.model_validate_json(line))
    return records
