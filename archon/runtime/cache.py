"""Persistent call cache: SQLite in WAL mode, shared by runs, processes and search trials.

Every single-sample model call is keyed by the sha256 of (model, messages, sampling
parameters, seed, sample index), so re-running an overlapping architecture costs no new calls,
and a 5-sample node reuses the first 3 samples of an earlier 3-sample run. Failed calls are
never stored. Keys hold no API keys (requests carry none) and stored responses pass through
value redaction, so no secret reaches the file.

Several processes may write at once: WAL journaling, a busy timeout and ``INSERT OR IGNORE``
(two writers of the same key store the same answer) keep that safe.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from archon.values import CompletionRequest, CompletionResponse

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def cache_key(request: CompletionRequest, sample_index: int, seed: int | None) -> str:
    """The cache key of sample ``sample_index`` of ``request`` (its ``n`` is ignored)."""
    payload = {
        "v": _SCHEMA_VERSION,
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
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


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
    the event loop thread. Example::

        cache = CallCache(tmp_path / "cache.sqlite")
        cache.put(key, "openai/gpt-4o-mini", response)
        assert cache.get(key) is not None
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(_SCHEMA)
            self._conn = conn
        return self._conn

    def get(self, key: str) -> CompletionResponse | None:
        """The stored response for ``key`` (marked ``cached``), or None."""
        with self._lock:
            row = (
                self._connection()
                .execute("SELECT response FROM calls WHERE key = ?", (key,))
                .fetchone()
            )
        if row is None:
            return None
        response = CompletionResponse.model_validate_json(row[0])
        return response.model_copy(update={"cached": True})

    def put(self, key: str, model: str, response: CompletionResponse) -> None:
        """Store a successful response (the first writer of a key wins)."""
        data = response.model_copy(update={"cached": False}).model_dump_json()
        with self._lock:
            self._connection().execute(
                "INSERT OR IGNORE INTO calls (key, model, response, created) VALUES (?,?,?,?)",
                (key, model, data, time.time()),
            )

    def stats(self) -> CacheStats:
        """Number of entries, file size and entries per model."""
        with self._lock:
            conn = self._connection()
            entries = conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
            models = conn.execute(
                "SELECT model, COUNT(*) FROM calls GROUP BY model ORDER BY 2 DESC, 1"
            ).fetchall()
        size = sum(
            p.stat().st_size
            for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"))
            if p.exists()
        )
        return CacheStats(str(self.path), int(entries), size, tuple((m, int(c)) for m, c in models))

    def clear(self) -> int:
        """Delete every entry; returns how many there were."""
        with self._lock:
            conn = self._connection()
            count = int(conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
            conn.execute("DELETE FROM calls")
        with self._lock:
            conn.execute("VACUUM")
        return count

    def close(self) -> None:
        """Close the connection (it reopens on next use)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
