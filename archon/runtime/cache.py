"""Persistent call cache: SQLite in WAL mode, shared by runs, processes and search trials.

Every single-sample model call is keyed by the sha256 of (model, messages, sampling
parameters, seed, sample index) *and its scope*: what besides the request shapes the answer
-- the backend and its version, the endpoint (``api_base``), the local model file's identity
(see ``RouterClient.cache_scope``). So re-running an overlapping architecture costs no new
calls, a 5-sample node reuses the first 3 samples of an earlier 3-sample run, and two
servers (or two GGUF files) behind one model name never share an answer. Failed calls are
never stored. Keys hold no API keys (requests carry none) and stored responses pass through
value redaction, so no secret reaches the file.

Each entry also keeps the canonical request its key hashes (when it holds no secret value)
and the origin the writing run declared (pipeline, dataset), so calls can be exported as a
verifiable, filterable candidate bank (:mod:`archon.runtime.bank`). A cache may draw on banks:
a key the file lacks is looked up in them, read-only, and counted in :attr:`CallCache.bank_hits`.

Several processes may write at once: WAL journaling, a busy timeout and ``INSERT OR IGNORE``
(two writers of the same key store the same answer) keep that safe. A file that is not an
archon cache (not SQLite, corrupt, another schema or an older version) is detected when it
is opened, renamed aside with a timestamp suffix and a warning, and replaced by a new one; a
failure later in a run disables the cache for the run (with a warning) rather than failing
it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pydantic import ValidationError

from archon.errors import ArchonError
from archon.values import CompletionRequest, CompletionResponse

if TYPE_CHECKING:
    from archon.runtime.bank import Bank

logger = logging.getLogger(__name__)

_SCHEMA_VERSION = 2  # of the keys: part of every key's payload, so never bumped lightly
_FILE_VERSION = 3  # of the file: 3 added the request and origin columns
_SQLITE_MAGIC = b"SQLite format 3\x00"
_OLD_COLUMNS = ("key", "model", "response", "created")
_COLUMNS = (*_OLD_COLUMNS, "request", "origin")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL,
    request TEXT,
    origin TEXT
)
"""
# sqlite3 result codes meaning "this file is not a usable database" (not "busy" or "locked").
_BROKEN_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB


class CacheError(ArchonError):
    """The cache file cannot be opened or created (e.g. an unwritable directory)."""


@runtime_checkable
class ScopedClient(Protocol):
    """A client that names what besides the request shapes a model's answers."""

    async def cache_scope(self, model: str) -> str:
        """Backend, version, endpoint, model file: anything that changes the answer."""
        ...


def cache_key(
    request: CompletionRequest, sample_index: int, seed: int | None, scope: str = ""
) -> str:
    """The cache key of sample ``sample_index`` of ``request`` (its ``n`` is ignored) as
    served by ``scope`` (see :class:`ScopedClient`)."""
    return key_of(key_request(request, sample_index, seed, scope))


def key_of(request_text: str) -> str:
    """The key of a canonical request text (see :func:`key_request`): its sha256."""
    return hashlib.sha256(request_text.encode()).hexdigest()


def key_request(
    request: CompletionRequest, sample_index: int, seed: int | None, scope: str = ""
) -> str:
    """The canonical JSON text whose sha256 is the cache key (stored with the entry, so a
    bank's importer can check each key against what it claims to answer)."""
    payload = {
        "v": _SCHEMA_VERSION,
        "scope": scope,
        "model": request.model,
        "messages": [[m.role, m.content] for m in request.messages],
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_tokens": request.max_tokens,
        "stop": list(request.stop),
        "logprobs": request.logprobs,
        "assistant_prefix": request.assistant_prefix,
        "score_only": request.score_only,
        "seed": seed,
        "sample": sample_index,
    }
    if request.stop_after_code:  # only when set: the keys of earlier entries stay valid
        payload["stop_after_code"] = True
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class _NotOurs(Exception):
    """Internal: the file is SQLite, but not (this version of) an archon cache."""


@dataclass(frozen=True)
class CacheStats:
    """What the cache file holds."""

    path: str
    entries: int
    bytes: int
    models: tuple[tuple[str, int], ...]


class CallCache:
    """A persistent map from call keys to responses.

    Methods are synchronous and quick (one indexed SQLite statement); they are called from
    the event loop thread. The file is opened (and repaired if broken) on first use or by
    :meth:`open`; :attr:`warnings` says what was repaired. Example::

        cache = CallCache(tmp_path / "cache.sqlite")
        cache.put(key, "openai/gpt-4o-mini", response)
        assert cache.get(key) is not None
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_s: float = 30.0,
        origin: Mapping[str, str] | None = None,
        banks: Sequence[Bank] = (),
    ) -> None:
        """Args:
        path: the SQLite file (created when absent).
        busy_timeout_s: how long a write waits for another process's.
        origin: what the writing run is (e.g. ``{"pipeline": ..., "dataset": ...}``),
            stored with each new entry so exports can be filtered by it.
        banks: read-only banks consulted, in order, for keys the file lacks.
        """
        self.path = Path(path)
        self.origin = (
            json.dumps(dict(origin), sort_keys=True, separators=(",", ":")) if origin else None
        )
        self.banks = tuple(banks)
        self.bank_hits = 0
        """Lookups answered by a bank (not by the file) since this object was made."""
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._warnings: list[str] = []
        self._disabled = False

    @property
    def warnings(self) -> tuple[str, ...]:
        """What went wrong with the file (moved aside, disabled), oldest first."""
        return tuple(self._warnings)

    def open(self) -> tuple[str, ...]:
        """Open (and repair) the file now; returns :attr:`warnings`. Raises CacheError."""
        with self._lock:
            self._connection()
        return self.warnings

    def _warn(self, message: str) -> None:
        logger.warning("%s", message)
        self._warnings.append(message)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CacheError(f"cannot create {self.path.parent}: {error.strerror}") from error
        if self.path.is_dir():
            raise CacheError(f"cache path {self.path} is a directory")
        problem = _not_sqlite(self.path)
        if problem is not None:
            self._move_aside(problem)
        try:
            return self._connect_checked()
        except _NotOurs as error:
            self._move_aside(str(error))
        except sqlite3.DatabaseError as error:
            if getattr(error, "sqlite_errorcode", None) not in _BROKEN_CODES:
                raise CacheError(f"cannot open the cache {self.path}: {error}") from error
            self._move_aside(f"damaged ({error})")
        try:
            return self._connect_checked()
        except (sqlite3.Error, _NotOurs) as error:
            raise CacheError(f"cannot create a new cache at {self.path}: {error}") from error

    def _connect_checked(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_s * 1000)}")
            # One writer at a time checks and creates, so two processes opening a new file
            # never see each other's half-made schema. The check only reads: a foreign
            # database is moved aside exactly as it was.
            conn.execute("BEGIN IMMEDIATE")
            try:
                _check_or_create(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    def _move_aside(self, reason: str) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.broken-{stamp}")
        counter = 1
        while aside.exists():
            counter += 1
            aside = self.path.with_name(f"{self.path.name}.broken-{stamp}-{counter}")
        try:
            self.path.replace(aside)
            # A stale journal next to a new file could be replayed into it: move it too.
            for suffix in ("-wal", "-shm"):
                companion = Path(f"{self.path}{suffix}")
                if companion.exists():
                    companion.replace(Path(f"{aside}{suffix}"))
        except OSError as error:
            raise CacheError(
                f"the cache {self.path} is {reason} and cannot be moved aside:"
                f" {error.strerror}; delete it or pass --no-cache"
            ) from error
        self._warn(f"the cache {self.path} is {reason}; moved it to {aside} and started anew")

    def _disable(self, error: Exception) -> None:
        if not self._disabled:
            self._disabled = True
            self._warn(f"the cache {self.path} failed ({error}); not using it for this run")

    def get(self, key: str, request: str | None = None) -> CompletionResponse | None:
        """The stored response for ``key`` (marked ``cached``), else a bank's, else None.

        ``request`` is the key's canonical request text: an entry written before requests
        were kept gains it (and this cache's origin) on its first hit.
        """
        row = None if self._disabled else self._row(key, request)
        if row is not None:
            try:
                response = CompletionResponse.model_validate_json(row)
            except (ValidationError, ValueError, TypeError):
                response = None  # an entry this version cannot read is a miss, not a failure
            if response is not None:
                return response.model_copy(update={"cached": True})
        for bank in self.banks:
            answer = bank.get(key)
            if answer is not None:
                self.bank_hits += 1
                return answer.model_copy(update={"cached": True})
        return None

    def _row(self, key: str, request: str | None) -> str | None:
        try:
            with self._lock:
                conn = self._connection()
                row = conn.execute(
                    "SELECT response, request FROM calls WHERE key = ?", (key,)
                ).fetchone()
                if row is not None and row[1] is None and request is not None:
                    conn.execute(
                        "UPDATE calls SET request = ?, origin = COALESCE(origin, ?)"
                        " WHERE key = ? AND request IS NULL",
                        (request, self.origin, key),
                    )
        except sqlite3.Error as error:
            self._disable(error)
            return None
        return None if row is None else str(row[0])

    def put(
        self, key: str, model: str, response: CompletionResponse, request: str | None = None
    ) -> None:
        """Store a successful response (the first writer of a key wins), with the canonical
        request text the key hashes (None: not kept, e.g. when it holds a secret)."""
        if self._disabled:
            return
        data = response.model_copy(update={"cached": False}).model_dump_json()
        try:
            with self._lock:
                self._connection().execute(
                    "INSERT OR IGNORE INTO calls"
                    " (key, model, response, created, request, origin) VALUES (?,?,?,?,?,?)",
                    (key, model, data, time.time(), request, self.origin),
                )
        except sqlite3.Error as error:
            self._disable(error)

    def entries(
        self, *, after: str = "", limit: int = 1000
    ) -> list[tuple[str, str, str, str | None, str | None]]:
        """Up to ``limit`` entries with keys after ``after``, in key order:
        ``(key, model, response, request, origin)`` (for exporting; repairs a broken file)."""
        try:
            with self._lock:
                rows = (
                    self._connection()
                    .execute(
                        "SELECT key, model, response, request, origin FROM calls"
                        " WHERE key > ? ORDER BY key LIMIT ?",
                        (after, limit),
                    )
                    .fetchall()
                )
        except sqlite3.Error as error:
            raise CacheError(f"cannot read the cache {self.path}: {error}") from error
        return [(str(k), str(m), str(r), q, o) for k, m, r, q, o in rows]

    def stored(self, key: str) -> str | None:
        """The raw stored response text of ``key`` in the file (banks not consulted)."""
        try:
            with self._lock:
                row = (
                    self._connection()
                    .execute("SELECT response FROM calls WHERE key = ?", (key,))
                    .fetchone()
                )
        except sqlite3.Error as error:
            raise CacheError(f"cannot read the cache {self.path}: {error}") from error
        return None if row is None else str(row[0])

    def add(self, rows: Sequence[tuple[str, str, str, str | None, str | None]]) -> int:
        """Insert ``(key, model, response, request, origin)`` rows whose keys are absent, in
        one transaction; returns how many were added (for importing a bank)."""
        try:
            with self._lock:
                conn = self._connection()
                before = conn.total_changes
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(
                        "INSERT OR IGNORE INTO calls"
                        " (key, model, response, created, request, origin)"
                        " VALUES (?,?,?,?,?,?)",
                        [(k, m, r, time.time(), q, o) for k, m, r, q, o in rows],
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                return conn.total_changes - before
        except sqlite3.Error as error:
            raise CacheError(f"cannot write the cache {self.path}: {error}") from error

    def stats(self) -> CacheStats:
        """Number of entries, file size and entries per model (repairs a broken file)."""
        try:
            with self._lock:
                conn = self._connection()
                entries = conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
                models = conn.execute(
                    "SELECT model, COUNT(*) FROM calls GROUP BY model ORDER BY 2 DESC, 1"
                ).fetchall()
        except sqlite3.Error as error:
            raise CacheError(f"cannot read the cache {self.path}: {error}") from error
        size = sum(
            p.stat().st_size
            for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"))
            if p.exists()
        )
        return CacheStats(str(self.path), int(entries), size, tuple((m, int(c)) for m, c in models))

    def clear(self) -> int:
        """Delete every entry; returns how many there were (repairs a broken file)."""
        try:
            with self._lock:
                conn = self._connection()
                count = int(conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
                conn.execute("DELETE FROM calls")
            with self._lock:
                conn.execute("VACUUM")
        except sqlite3.Error as error:
            raise CacheError(f"cannot clear the cache {self.path}: {error}") from error
        return count

    def close(self) -> None:
        """Close the connection (it reopens on next use)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _not_sqlite(path: Path) -> str | None:
    """Why ``path`` cannot be an SQLite file (None when it may be one, or is absent/empty)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CacheError(f"cannot read the cache {path}: {error.strerror}") from error
    if head and head != _SQLITE_MAGIC:
        return "not an SQLite file"
    return None


def _check_or_create(conn: sqlite3.Connection) -> None:
    """Create the schema in an empty database; raise _NotOurs for any other schema."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if not tables:
        conn.execute(_SCHEMA)
        conn.execute(f"PRAGMA user_version={_FILE_VERSION}")
        return
    if tables != {"calls"}:
        raise _NotOurs("not an archon cache (tables: " + ", ".join(sorted(tables)) + ")")
    columns = tuple(row[1] for row in conn.execute("PRAGMA table_info(calls)"))
    if columns == _OLD_COLUMNS and version == _SCHEMA_VERSION:
        # format 2 -> 3: the same keys, plus the request and origin of new entries
        conn.execute("ALTER TABLE calls ADD COLUMN request TEXT")
        conn.execute("ALTER TABLE calls ADD COLUMN origin TEXT")
        conn.execute(f"PRAGMA user_version={_FILE_VERSION}")
        return
    if columns != _COLUMNS:
        raise _NotOurs("not an archon cache (unexpected columns)")
    if version != _FILE_VERSION:
        raise _NotOurs(f"cache format {version or 1}, not {_FILE_VERSION}")
