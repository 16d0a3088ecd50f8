"""``SqliteState``: the shared state of one machine's ``--workers N``, an SQLite file in WAL
mode in a private temporary directory that ``mockserver serve`` creates and removes.

Every operation is a short transaction on the calling (event-loop) thread: tens of
microseconds, and nothing on the request path of a plain replay (see ``seam``).  Processes
wait for each other's write lock at most ``BUSY_TIMEOUT_MS``.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from .seam import CACHE_IDLE_S, JOURNAL_MAX_BYTES, JOURNAL_MAX_ENTRIES, Batch, StoreDown, Versions

BUSY_TIMEOUT_MS: Final = 5000
#: how many journal rows a trim looks at per step
_TRIM_STEP: Final = 512

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters(kind TEXT, key TEXT, n INTEGER NOT NULL,
                                    PRIMARY KEY(kind, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cache(key BLOB PRIMARY KEY, expires REAL NOT NULL,
                                 life REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journal(id INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL,
                                   size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS usage(field TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS items(kind TEXT, key TEXT, seq INTEGER NOT NULL, data TEXT NOT NULL,
                                 PRIMARY KEY(kind, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS procs(proc TEXT PRIMARY KEY, acked INTEGER NOT NULL,
                                 seen REAL NOT NULL, applied INTEGER NOT NULL DEFAULT 0)
                                 WITHOUT ROWID;
"""
#: counters the store keeps for itself (kind ``""``)
_META = ""


class SqliteState:
    """The ``SharedState`` of processes on one machine (see the module docstring)."""

    kind = "sqlite"

    def __init__(
        self,
        path: Path,
        *,
        journal_entries: int = JOURNAL_MAX_ENTRIES,
        journal_bytes: int = JOURNAL_MAX_BYTES,
    ) -> None:
        self.path = path
        self.where = str(path)
        self.journal_entries = journal_entries
        self.journal_bytes = journal_bytes
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=OFF")  # a private, temporary file
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreDown(f"shared state {path}: {exc}") from exc

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: the write lock from the start)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreDown(f"shared state {self.path}: {exc}") from exc

    def _read(self, sql: str, args: Sequence[object] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreDown(f"shared state {self.path}: {exc}") from exc

    # --- counters --------------------------------------------------------------------------

    async def incr(self, kind: str, key: str, by: int = 1) -> int:
        with self._tx() as db:
            row = db.execute(
                "INSERT INTO counters(kind, key, n) VALUES (?, ?, ?) "
                "ON CONFLICT(kind, key) DO UPDATE SET n = n + excluded.n RETURNING n",
                (kind, key, by),
            ).fetchone()
        return int(row[0])

    async def counts(self, kind: str) -> dict[str, int]:
        rows = self._read("SELECT key, n FROM counters WHERE kind = ?", (kind,))
        return {str(k): int(n) for k, n in rows}

    async def clear_counts(self, *kinds: str) -> None:
        with self._tx() as db:
            db.executemany("DELETE FROM counters WHERE kind = ?", [(k,) for k in kinds])

    # --- the prompt-cache simulation ------------------------------------------------------

    async def cache_get(self, keys: Sequence[bytes]) -> list[float | None]:
        if not keys:
            return []
        now = time.time()
        found: dict[bytes, float] = {}
        for start in range(0, len(keys), 500):  # (SQLite's limit on bound parameters)
            part = keys[start : start + 500]
            marks = ",".join("?" * len(part))
            for key, expires, life in self._read(
                f"SELECT key, expires, life FROM cache WHERE key IN ({marks})", part
            ):
                if float(expires) > now:
                    found[bytes(key)] = float(life)
        return [found.get(bytes(k)) for k in keys]

    async def cache_put(self, entries: Sequence[tuple[bytes, float]]) -> None:
        if not entries:
            return
        now = time.time()
        rows = [
            (k, now + (life if math.isfinite(life) else CACHE_IDLE_S), life) for k, life in entries
        ]
        with self._tx() as db:
            db.executemany(
                "INSERT INTO cache(key, expires, life) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET expires = excluded.expires, life = excluded.life",
                rows,
            )

    async def cache_clear(self) -> int:
        with self._tx() as db:
            return db.execute("DELETE FROM cache").rowcount

    def expire_cache(self) -> int:
        """Drop the entries that have expired (called now and then by the coordinator)."""
        with self._tx() as db:
            return db.execute("DELETE FROM cache WHERE expires <= ?", (time.time(),)).rowcount

    # --- admin-added rules ----------------------------------------------------------------

    async def items(self, kind: str) -> list[tuple[str, str]]:
        rows = self._read("SELECT key, data FROM items WHERE kind = ? ORDER BY seq", (kind,))
        return [(str(k), str(d)) for k, d in rows]

    async def add_items(self, kind: str, items: Sequence[tuple[str, str]]) -> list[str]:
        with self._tx() as db:
            keys = [k for k, _ in items]
            marks = ",".join("?" * len(keys))
            taken = [
                str(r[0])
                for r in db.execute(
                    f"SELECT key FROM items WHERE kind = ? AND key IN ({marks})", (kind, *keys)
                ).fetchall()
            ]
            if taken:
                return taken
            (top,) = db.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM items WHERE kind = ?", (kind,)
            ).fetchone()
            db.executemany(
                "INSERT INTO items(kind, key, seq, data) VALUES (?, ?, ?, ?)",
                [(kind, k, top + i + 1, d) for i, (k, d) in enumerate(items)],
            )
        return []

    async def remove_item(self, kind: str, key: str) -> bool:
        with self._tx() as db:
            return (
                db.execute("DELETE FROM items WHERE kind = ? AND key = ?", (kind, key)).rowcount > 0
            )

    async def clear_items(self, kind: str) -> int:
        with self._tx() as db:
            return db.execute("DELETE FROM items WHERE kind = ?", (kind,)).rowcount

    # --- written behind the requests -------------------------------------------------------

    async def apply(self, batch: Batch) -> None:
        with self._tx() as db:
            row = db.execute("SELECT applied FROM procs WHERE proc = ?", (batch.proc,)).fetchone()
            if row is not None and int(row[0]) >= batch.seq:
                return  # (applied before)
            db.execute(
                "INSERT INTO procs(proc, acked, seen, applied) VALUES (?, 0, ?, ?) "
                "ON CONFLICT(proc) DO UPDATE SET applied = excluded.applied",
                (batch.proc, time.time(), batch.seq),
            )
            if batch.records:
                self._append(db, batch.records)
            if batch.usage:
                db.executemany(
                    "INSERT INTO usage(field, n) VALUES (?, ?) "
                    "ON CONFLICT(field) DO UPDATE SET n = n + excluded.n",
                    list(batch.usage.items()),
                )
            if batch.counts:
                db.executemany(
                    "INSERT INTO counters(kind, key, n) VALUES (?, ?, ?) "
                    "ON CONFLICT(kind, key) DO UPDATE SET n = n + excluded.n",
                    [(kind, key, n) for (kind, key), n in batch.counts.items()],
                )

    def _append(self, db: sqlite3.Connection, records: Sequence[str]) -> None:
        rows = [(r, len(r.encode())) for r in records]
        db.executemany("INSERT INTO journal(data, size) VALUES (?, ?)", rows)
        added = sum(size for _, size in rows)
        count, size = self._journal_totals(db, len(rows), added)
        while count > self.journal_entries or size > self.journal_bytes:
            oldest = db.execute(
                "SELECT id, size FROM journal ORDER BY id LIMIT ?", (_TRIM_STEP,)
            ).fetchall()
            if not oldest:
                break
            cut, freed, dropped = 0, 0, 0
            for rid, rsize in oldest:
                if count - dropped <= self.journal_entries and size - freed <= self.journal_bytes:
                    break
                cut, freed, dropped = rid, freed + rsize, dropped + 1
            db.execute("DELETE FROM journal WHERE id <= ?", (cut,))
            count, size = self._journal_totals(db, -dropped, -freed)

    @staticmethod
    def _journal_totals(db: sqlite3.Connection, rows: int, size: int) -> tuple[int, int]:
        out = []
        for key, by in (("journal_rows", rows), ("journal_bytes", size)):
            (n,) = db.execute(
                "INSERT INTO counters(kind, key, n) VALUES (?, ?, ?) "
                "ON CONFLICT(kind, key) DO UPDATE SET n = n + excluded.n RETURNING n",
                (_META, key, by),
            ).fetchone()
            out.append(int(n))
        return out[0], out[1]

    async def journal(self, since_id: int = 0) -> list[str]:
        rows = self._read("SELECT id, data FROM journal WHERE id > ? ORDER BY id", (since_id,))
        return [_with_id(int(i), str(d)) for i, d in rows]

    async def journal_span(self) -> tuple[int | None, int]:
        ((oldest, count),) = self._read("SELECT MIN(id), COUNT(*) FROM journal")
        return (int(oldest) if oldest is not None else None), int(count)

    async def journal_clear(self) -> int:
        with self._tx() as db:
            n = db.execute("DELETE FROM journal").rowcount
            db.execute(
                "DELETE FROM counters WHERE kind = ? AND key IN ('journal_rows', 'journal_bytes')",
                (_META,),
            )
            return n

    async def usage(self) -> dict[str, int]:
        return {str(f): int(n) for f, n in self._read("SELECT field, n FROM usage")}

    async def usage_reset(self) -> dict[str, int]:
        with self._tx() as db:
            rows = db.execute("SELECT field, n FROM usage").fetchall()
            db.execute("DELETE FROM usage")
        return {str(f): int(n) for f, n in rows}

    # --- processes -------------------------------------------------------------------------

    _VERSIONS = (
        "SELECT key, n FROM counters WHERE kind = '' "
        "AND key IN ('epoch', 'config', 'reload', 'journal')"
    )

    @staticmethod
    def _as_versions(rows: list[Any]) -> Versions:
        got = {str(k): int(n) for k, n in rows}
        return Versions(*(got.get(name, 0) for name in ("epoch", "config", "reload", "journal")))

    def _versions(self, db: sqlite3.Connection) -> Versions:
        return self._as_versions(db.execute(self._VERSIONS).fetchall())

    async def versions(self) -> Versions:
        return self._as_versions(self._read(self._VERSIONS))

    async def bump(
        self, *, config: bool = False, reload: bool = False, journal: bool = False
    ) -> Versions:
        names = ["epoch"] + [
            name
            for name, on in (("config", config), ("reload", reload), ("journal", journal))
            if on
        ]
        with self._tx() as db:
            db.executemany(
                "INSERT INTO counters(kind, key, n) VALUES (?, ?, 1) "
                "ON CONFLICT(kind, key) DO UPDATE SET n = n + 1",
                [(_META, name) for name in names],
            )
            return self._versions(db)

    async def check_in(self, proc: str, acked: int) -> Versions:
        with self._tx() as db:
            db.execute(
                "INSERT INTO procs(proc, acked, seen) VALUES (?, ?, ?) "
                "ON CONFLICT(proc) DO UPDATE SET acked = excluded.acked, seen = excluded.seen",
                (proc, acked, time.time()),
            )
            return self._versions(db)

    async def acks(self, within_s: float) -> dict[str, int]:
        with self._tx() as db:
            db.execute("DELETE FROM procs WHERE seen < ?", (time.time() - within_s,))
            return {str(p): int(a) for p, a in db.execute("SELECT proc, acked FROM procs")}

    async def leave(self, proc: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM procs WHERE proc = ?", (proc,))

    async def ping(self) -> None:
        self._read("SELECT 1")

    async def close(self) -> None:
        with self._lock:
            self._db.close()


def _with_id(record_id: int, data: str) -> str:
    """A stored record (a JSON object without ``id``) with its id as the first member."""
    return f'{{"id":{record_id},{data[1:]}'
