"""Per-item records: what one evaluated item gave (answer, every candidate, score, cost, error),
and the JSONL file they are appended to as items finish.

The file is the evaluation's crash-safe state: each record is written and flushed the moment
its item is scored, so after a crash (or Ctrl-C) ``resume`` reads the file, keeps every
complete line, drops a truncated last line, and skips the items already there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from pydantic import BaseModel, ConfigDict, ValidationError

from archon.errors import ArchonError
from archon.outputs import LineFile
from archon.runtime.secrets import REDACTED, Redactor
from archon.values import Usage

logger = logging.getLogger(__name__)


class RecordsError(ArchonError):
    """A records file cannot be resumed (corrupt, or written by another pipeline/metric)."""


class RecordsWriteError(RecordsError):
    """A record cannot be written (a full disk, an I/O error); the complete records already
    in the file are kept, so a resume picks up from them."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CandidateRecord(_Frozen):
    """One candidate some node produced for the item's last turn.

    Attributes:
        node: id of the node whose output held it; ``kind``: that node's layer kind.
        index: position in the node's output (0 = the node's best).
        source: the node reads no other node (its candidates are independent samples).
        text: the candidate text.
        correct: the metric's verdict on it (None when candidates were not scored).
    """

    node: str
    kind: str
    index: int
    source: bool
    text: str
    correct: bool | None = None


class ModelUsage(_Frozen):
    """What one model was asked during one item (or, summed, during an evaluation).

    Attributes:
        model: the model as the runtime resolved it (``local/qwen2.5-coder-0.5b``...).
        calls: calls made to it (failed calls included; cache hits excluded).
        cache_hits: calls answered from the cache instead.
        prompt_tokens, completion_tokens, usd: what those calls spent.
        cached_tokens: what the cache hits would have spent in tokens.
    """

    model: str
    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: float = 0.0
    cached_tokens: int = 0
    """Prompt plus completion tokens of the cache hits: what they would have cost."""

    def __add__(self, other: ModelUsage) -> ModelUsage:
        return ModelUsage(
            model=self.model,
            calls=self.calls + other.calls,
            cache_hits=self.cache_hits + other.cache_hits,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            usd=self.usd + other.usd,
            cached_tokens=self.cached_tokens + other.cached_tokens,
        )


def merge_usage(totals: Iterable[ModelUsage], more: Iterable[ModelUsage]) -> tuple[ModelUsage, ...]:
    """Per-model sums of ``totals`` and ``more``, sorted by model name."""
    merged: dict[str, ModelUsage] = {}
    for usage in (*totals, *more):
        earlier = merged.get(usage.model)
        merged[usage.model] = usage if earlier is None else earlier + usage
    return tuple(merged[name] for name in sorted(merged))


class ItemRecord(_Frozen):
    """The outcome of one item.

    Attributes:
        id: the item id. ``answers``: the pipeline's answer per user turn (the last one is the
            final answer; empty when the run failed).
        candidates: every candidate of every node (last turn).
        score, correct, valid, detail: the metric's :class:`~archon.eval.metrics.Score`
            (``score`` 0 and ``correct`` False for a failed item).
        usage, seconds, cache_hits: what the pipeline spent (all turns).
        by_model: ``usage`` and ``cache_hits`` split by model, sorted by model name.
        judge_usage: what the metric's own model calls spent.
        error, error_type: why the item failed (a node error, a per-query budget...).
        fingerprint, metric: the pipeline and metric that produced the record (resume checks).
        exited_at, skipped: the early-exit gate the last turn stopped at and the nodes that
            exit skipped (None and empty when every stage ran).
    """

    id: str
    answers: tuple[str, ...] = ()
    candidates: tuple[CandidateRecord, ...] = ()
    score: float = 0.0
    correct: bool | None = None
    valid: bool = True
    detail: str = ""
    usage: Usage = Usage()
    seconds: float = 0.0
    cache_hits: int = 0
    by_model: tuple[ModelUsage, ...] = ()
    judge_usage: Usage = Usage()
    error: str | None = None
    error_type: str | None = None
    fingerprint: str = ""
    metric: str = ""
    exited_at: str | None = None
    skipped: tuple[str, ...] = ()

    @property
    def calls_needed(self) -> int:
        """The model calls the pipeline made for this item, cache hits included (what it
        would cost without a cache)."""
        return self.usage.calls + self.cache_hits

    @property
    def tokens_needed(self) -> int:
        """Prompt plus completion tokens of this item, cache hits included."""
        return self.usage.tokens + sum(usage.cached_tokens for usage in self.by_model)

    @property
    def answer(self) -> str:
        """The final answer ('' when the item failed)."""
        return self.answers[-1] if self.answers else ""

    @property
    def ok(self) -> bool:
        return self.error is None


def _record_problem(error: ValidationError) -> str:
    """The first thing wrong with a records line, in a few words (pydantic's own text spans
    several lines and quotes the input)."""
    first = error.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(part) for part in first["loc"])
    kind = first["type"]
    if kind == "json_invalid":
        return "not JSON"
    if kind == "model_type":
        return "not a JSON object"
    if kind == "missing":
        return f"missing field '{field}'"
    if kind == "extra_forbidden":
        return f"unknown field '{field}'"
    return f"field '{field}': {first['msg'].lower()}"


def read_records(path: str | Path) -> tuple[list[ItemRecord], int]:
    """The complete records of a file and the byte length they occupy.

    Records are newline-terminated; an unterminated last line (a crash while writing) is
    ignored. A bad terminated line raises :class:`RecordsError`.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    except OSError as e:
        raise RecordsError(f"{path}: cannot read records ({e})") from e
    *complete, tail = data.split(b"\n")
    records: list[ItemRecord] = []
    for number, line in enumerate(complete, 1):
        if not line.strip():
            continue
        try:
            records.append(ItemRecord.model_validate_json(line))
        except ValidationError as e:
            raise RecordsError(
                f"{path}: line {number} is not a record ({_record_problem(e)}): fix or delete"
                " that line, then resume"
            ) from None
    if tail.strip():
        logger.warning("%s: ignoring a truncated last record", path)
    return records, len(data) - len(tail)


def redact_json(line: str, redactor: Redactor) -> str:
    """``line`` (JSON text) with every secret value replaced, as written and as JSON escapes
    it, so that a key a model echoed or an error quoted never reaches a records file."""
    for value in redactor.values:
        escaped = json.dumps(value)[1:-1]
        for form in dict.fromkeys((escaped, value)):
            if form in line:
                line = line.replace(form, REDACTED)
    return line


class RecordWriter:
    """Appends records to a JSONL file, one unbuffered line each (never a torn one), with
    secret values redacted (the environment's keys by default, as the call cache redacts
    them).

    With ``resume`` the existing complete records are kept (a truncated tail is cut off);
    otherwise the file is started afresh.
    """

    def __init__(self, path: str | Path, *, resume: bool, redactor: Redactor | None = None) -> None:
        self.path = Path(path)
        self._redactor = redactor if redactor is not None else Redactor.from_environ()
        self.existing: list[ItemRecord] = []
        keep: int | None = None
        if resume:
            self.existing, keep = read_records(self.path)
        self._file = LineFile(self.path, keep=keep)
        self._failed = False

    @property
    def complete(self) -> int:
        """The complete records the file holds: those kept on resume and those written."""
        return len(self.existing) + self._file.lines

    def write(self, record: ItemRecord) -> None:
        """Append ``record`` as one line, unbuffered.

        Raises:
            RecordsWriteError: the line cannot be written (a full disk, an I/O error); the
                file still ends with the last complete record.
        """
        line = redact_json(record.model_dump_json(), self._redactor)
        try:
            self._file.append(line.encode())
        except OSError as error:
            self._failed = True
            raise self._write_error(error) from None

    def _write_error(self, error: OSError) -> RecordsWriteError:
        return RecordsWriteError(
            f"cannot write records to {self.path}: {error.strerror or error}; the"
            f" {self.complete} complete records written so far are kept: free space (or fix"
            " the disk) and rerun with --resume"
        )

    def close(self) -> None:
        """Flush to disk and close (after a failed write, just close).

        Raises:
            RecordsWriteError: the records cannot be forced to disk.
        """
        try:
            self._file.close(sync=not self._failed)
        except OSError as error:
            raise self._write_error(error) from None

    @property
    def closed(self) -> bool:
        return self._file.closed

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def check_resumable(records: list[ItemRecord], fingerprint: str, metric: str, path: Path) -> None:
    """Refuse to mix records of another pipeline or metric into this evaluation."""
    for record in records:
        if record.fingerprint and record.fingerprint != fingerprint:
            raise RecordsError(
                f"{path}: record {record.id!r} was made by a different pipeline"
                " (fingerprint mismatch); use another --records file or drop --resume"
            )
        if record.metric and record.metric != metric:
            raise RecordsError(
                f"{path}: record {record.id!r} was scored with metric {record.metric!r},"
                f" not {metric!r}; use another --records file or drop --resume"
            )
