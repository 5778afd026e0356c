"""On-disk verdict cache: key = (model, prompt version, method, redacted input), value = the verdict as JSON.

SQLite (standard library, no pickle), bounded (least recently used rows are evicted beyond ``max_entries``), safe
for threads of one process and for several processes (SQLite locking). Only redacted text ever reaches the key,
and the key is stored as a SHA-256 digest, so the file holds no log text beyond the redacted reason strings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def cache_key(model: str, prompt_version: str, method: str, redacted_input: Any) -> str:
    """The digest that identifies one judgment."""
    payload = json.dumps([model, prompt_version, method, redacted_input], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class VerdictCache:
    """A bounded key -> JSON store in ``<directory>/verdicts.sqlite``.

    Args:
        directory: where the file lives (created on first use).
        max_entries: rows kept; older (least recently used) rows are evicted.
    """

    def __init__(self, directory: Path, max_entries: int = 100_000):
        self.directory = Path(directory)
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._writes = 0

    @property
    def path(self) -> Path:
        return self.directory / "verdicts.sqlite"

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, value TEXT NOT NULL, used REAL NOT NULL)"
            )
            conn.commit()
            self._conn = conn
        return self._conn

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached value, or None (a corrupt row counts as a miss and is dropped)."""
        with self._lock:
            try:
                db = self._db()
                row = db.execute("SELECT value FROM verdicts WHERE key = ?", (key,)).fetchone()
                if row is None:
                    self.misses += 1
                    return None
                db.execute("UPDATE verdicts SET used = ? WHERE key = ?", (time.time(), key))
                db.commit()
                value = json.loads(row[0])
            except (sqlite3.Error, json.JSONDecodeError) as exc:
                logger.warning("verdict cache read failed (%s); treating as a miss", type(exc).__name__)
                self.misses += 1
                return None
            self.hits += 1
            return value if isinstance(value, dict) else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Store ``value`` (JSON-able); failures are logged, never raised (the cache is an optimisation)."""
        with self._lock:
            try:
                db = self._db()
                db.execute(
                    "INSERT OR REPLACE INTO verdicts (key, value, used) VALUES (?, ?, ?)",
                    (key, json.dumps(value, sort_keys=True, default=str), time.time()),
                )
                self._writes += 1
                if self._writes % 500 == 0:
                    db.execute(
                        "DELETE FROM verdicts WHERE key IN (SELECT key FROM verdicts ORDER BY used DESC LIMIT -1 OFFSET ?)",
                        (self.max_entries,),
                    )
                db.commit()
            except sqlite3.Error as exc:
                logger.warning("verdict cache write failed: %s", exc)

    def __len__(self) -> int:
        with self._lock:
            return int(self._db().execute("SELECT COUNT(*) FROM verdicts").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
