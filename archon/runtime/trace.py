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
from typing import IO, Protocol

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
        self._include_prompts = include_prompts

    @property
    def include_prompts(self) -> bool:
        return self._include_prompts

    def record(self, record: CallRecord) -> None:
        self.records.append(record)


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
    """Load the records of a JSONL trace file."""
    with Path(path).open(encoding="utf-8") as handle:
        return [CallRecord.model_validate_json(line) for line in handle if line.strip()]
