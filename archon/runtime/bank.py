"""Candidate banks: model calls exported from the call cache as one portable, verifiable file.

A bank lets a team share paid calls and lets anyone replay a published result for free: the
calls of a run (say, eight samples of two models on every HumanEval problem) are exported
once; a later eval or search that draws on the bank pays only for the calls it lacks.

The file is gzip-compressed JSON lines:

* a header ``{"archon_bank": 1, "created": ..., "filters": {...}}``;
* one line per call: ``key``, ``model``, ``request`` (the canonical request text the key is
  the sha256 of; null for entries written before requests were kept, or whose request held a
  secret), ``response`` (the stored response, already redacted) and ``origin`` (the pipeline
  and dataset of the run that made it, when it declared them);
* a trailer ``{"end": true, "entries": N, "sha256": ...}`` over the entry lines.

Reading checks all of it: the header, gzip's CRC, every line's shape, every key against its
request, the count and the digest; a truncated or altered file is refused with the line at
fault, before anything is imported. Importing merges into a cache and never overwrites: a
key already stored with a *different* answer is reported as a conflict and left as it was.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from archon.errors import ArchonError
from archon.outputs import write_atomic
from archon.runtime.cache import CallCache, key_of
from archon.values import CompletionResponse

__all__ = [
    "BANK_FORMAT",
    "Bank",
    "BankEntry",
    "BankError",
    "BankFilter",
    "ExportSummary",
    "ImportSummary",
    "export_bank",
    "import_bank",
    "read_bank",
]

BANK_FORMAT = 1
_BATCH = 1000


class BankError(ArchonError):
    """A bank file cannot be read (missing, truncated, altered) or written."""


@dataclass(frozen=True)
class BankEntry:
    """One call of a bank (see the module docstring for the fields)."""

    key: str
    model: str
    response: str
    request: str | None = None
    origin: str | None = None

    def origin_fields(self) -> dict[str, str]:
        """The origin as a mapping (empty when unknown or unreadable)."""
        if not self.origin:
            return {}
        try:
            value = json.loads(self.origin)
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}

    def row(self) -> tuple[str, str, str, str | None, str | None]:
        """The entry as a cache row ``(key, model, response, request, origin)``."""
        return (self.key, self.model, self.response, self.request, self.origin)


@dataclass(frozen=True)
class BankFilter:
    """Which calls to export: all of them, or those of some models, a pipeline, a dataset.

    ``pipeline`` and ``dataset`` match the origin a run declared; calls of unknown origin
    never match them.
    """

    models: tuple[str, ...] = ()
    pipeline: str | None = None
    dataset: str | None = None

    def keeps(self, entry: BankEntry) -> bool:
        """Whether ``entry`` passes the filter."""
        if self.models and entry.model not in self.models:
            return False
        origin = entry.origin_fields()
        if self.pipeline is not None and origin.get("pipeline") != self.pipeline:
            return False
        return self.dataset is None or origin.get("dataset") == self.dataset

    def as_json(self) -> dict[str, Any]:
        """The filter as written in a bank's header."""
        return {"models": list(self.models), "pipeline": self.pipeline, "dataset": self.dataset}


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_bank` wrote."""

    path: str
    entries: int
    bytes: int
    models: tuple[tuple[str, int], ...]
    unverifiable: int
    """Entries without their request text (their keys cannot be checked on import)."""


@dataclass(frozen=True)
class ImportSummary:
    """What :func:`import_bank` did."""

    entries: int
    added: int
    present: int
    """Keys the cache already held with the same answer."""
    conflicts: tuple[str, ...] = field(default=())
    """Keys the cache holds with a different answer (kept as they were)."""


def export_bank(
    cache: CallCache, path: str | Path, selection: BankFilter | None = None
) -> ExportSummary:
    """Write the calls of ``cache`` that pass ``selection`` to the bank file ``path``
    (atomically: an interrupted export leaves no partial file)."""
    selection = selection or BankFilter()
    counts: dict[str, int] = {}
    entries = unverifiable = 0
    digest = hashlib.sha256()
    header = {
        "archon_bank": BANK_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "filters": selection.as_json(),
    }
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as out:
        out.write(_line(header))
        for entry in _cache_entries(cache):
            if not selection.keeps(entry):
                continue
            line = _line(_entry_json(entry))
            digest.update(line)
            out.write(line)
            entries += 1
            unverifiable += entry.request is None
            counts[entry.model] = counts.get(entry.model, 0) + 1
        out.write(_line({"end": True, "entries": entries, "sha256": digest.hexdigest()}))
    data = buffer.getvalue()
    try:
        write_atomic(path, data)
    except OSError as error:
        raise BankError(f"cannot write the bank {path}: {error.strerror or error}") from error
    return ExportSummary(
        path=str(path),
        entries=entries,
        bytes=len(data),
        models=tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        unverifiable=unverifiable,
    )


def read_bank(path: str | Path) -> list[BankEntry]:
    """Every entry of the bank file ``path``, fully checked (raises :class:`BankError` naming
    the line at fault; nothing is returned from a file that fails any check)."""
    entries: list[BankEntry] = []
    digest = hashlib.sha256()
    trailer: dict[str, Any] | None = None
    for number, line in _lines(path):
        where = f"{path}, line {number}"
        if trailer is not None:
            raise BankError(f"{where}: data after the end marker")
        value = _json(line, where)
        if number == 1:
            if value.get("archon_bank") != BANK_FORMAT:
                raise BankError(f"{where}: not an archon bank (format {BANK_FORMAT} expected)")
            continue
        if value.get("end") is True:
            trailer = value
            continue
        digest.update(line)
        entries.append(_entry(value, where))
    if not entries and trailer is None:
        raise BankError(f"{path}: empty, or not an archon bank")
    if trailer is None:
        raise BankError(f"{path}: truncated (no end marker after {len(entries)} entries)")
    if trailer.get("entries") != len(entries) or trailer.get("sha256") != digest.hexdigest():
        raise BankError(f"{path}: the entries do not match the end marker (altered or damaged)")
    return entries


def import_bank(cache: CallCache, path: str | Path) -> ImportSummary:
    """Merge the bank file ``path`` into ``cache``: absent keys are added, a key stored with
    the same answer is left, a key stored with a different answer is a conflict (left too)."""
    entries = read_bank(path)
    present = 0
    conflicts: list[str] = []
    fresh: list[BankEntry] = []
    for entry in entries:
        stored = cache.stored(entry.key)
        if stored is None:
            fresh.append(entry)
        elif _same_answer(stored, entry.response):
            present += 1
        else:
            conflicts.append(entry.key)
    added = 0
    for start in range(0, len(fresh), _BATCH):
        added += cache.add([e.row() for e in fresh[start : start + _BATCH]])
    # a key added by another writer between the check and the insert is "present"
    present += len(fresh) - added
    return ImportSummary(len(entries), added, present, tuple(conflicts))


class Bank:
    """A bank file held in memory, answering lookups by key (read-only).

    Example::

        cache = CallCache(path, banks=[Bank.load("bench/banks/humaneval-code.bank")])
    """

    def __init__(self, entries: Iterable[BankEntry], name: str = "bank") -> None:
        self.name = name
        self._answers: dict[str, str] = {e.key: e.response for e in entries}

    @classmethod
    def load(cls, path: str | Path) -> Bank:
        """Read and check the bank file ``path`` (raises :class:`BankError`)."""
        return cls(read_bank(path), name=Path(path).name)

    def __len__(self) -> int:
        return len(self._answers)

    def __contains__(self, key: object) -> bool:
        return key in self._answers

    def get(self, key: str) -> CompletionResponse | None:
        """The bank's response for ``key``, or None."""
        text = self._answers.get(key)
        if text is None:
            return None
        try:
            return CompletionResponse.model_validate_json(text)
        except (ValidationError, ValueError):
            return None


def _cache_entries(cache: CallCache) -> Iterator[BankEntry]:
    after = ""
    while True:
        rows = cache.entries(after=after, limit=_BATCH)
        if not rows:
            return
        for key, model, response, request, origin in rows:
            yield BankEntry(key, model, response, request, origin)
        after = rows[-1][0]


def _entry_json(entry: BankEntry) -> dict[str, Any]:
    return {
        "key": entry.key,
        "model": entry.model,
        "request": entry.request,
        "response": json.loads(entry.response),
        "origin": entry.origin_fields() or None,
    }


def _entry(value: Mapping[str, Any], where: str) -> BankEntry:
    key, model, request = value.get("key"), value.get("model"), value.get("request")
    response, origin = value.get("response"), value.get("origin")
    if not isinstance(key, str) or not isinstance(model, str) or not isinstance(response, dict):
        raise BankError(f"{where}: an entry needs a key, a model and a response")
    if request is not None:
        if not isinstance(request, str):
            raise BankError(f"{where}: the request must be text")
        if key_of(request) != key:
            raise BankError(f"{where}: the key does not match its request (altered entry)")
    try:
        CompletionResponse.model_validate(response)
    except ValidationError as error:
        raise BankError(f"{where}: not a model response ({error.error_count()} errors)") from None
    if origin is not None and not isinstance(origin, dict):
        raise BankError(f"{where}: the origin must be an object")
    return BankEntry(
        key=key,
        model=model,
        response=json.dumps(response, separators=(",", ":"), ensure_ascii=False),
        request=request,
        origin=json.dumps(origin, sort_keys=True, separators=(",", ":")) if origin else None,
    )


def _same_answer(stored: str, response: str) -> bool:
    """Whether two stored responses give the same completions (usage and flags aside)."""
    try:
        a = CompletionResponse.model_validate_json(stored)
        b = CompletionResponse.model_validate_json(response)
    except (ValidationError, ValueError):
        return stored == response
    return a.completions == b.completions


def _line(value: Mapping[str, Any]) -> bytes:
    return (json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def _lines(path: str | Path) -> Iterator[tuple[int, bytes]]:
    number = 0
    try:
        with gzip.open(path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                yield number, line
    except FileNotFoundError:
        raise BankError(f"{path}: no such bank file") from None
    except IsADirectoryError:
        raise BankError(f"{path}: a directory, not a bank file") from None
    except (OSError, EOFError, zlib.error) as error:
        raise BankError(f"{path}: damaged after line {number} ({error})") from None


def _json(line: bytes, where: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        raise BankError(f"{where}: not JSON") from None
    if not isinstance(value, dict):
        raise BankError(f"{where}: not a JSON object")
    return value
