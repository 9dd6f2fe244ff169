"""SQLiteStore: checkpoints in one SQLite file, the embedded default.

stdlib ``sqlite3`` run in a worker thread, or inline in a writer's own thread (never on
the call's event loop), WAL mode so
readers never block the writer, and a busy timeout so several processes on one
machine (a LiveKit worker's job processes) can share the file. The conditional
upsert runs in one statement, so two processes writing the same call id keep the
checkpoint with the higher ``seq`` whatever the order they commit in.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import ClassVar

from ..background import off_loop
from .checkpoint import Checkpoint
from .store import ASIDE_MARK, ASIDE_TTL, DEFAULT_TTL, CheckpointStore, set_aside_from

_SCHEMA = """
CREATE TABLE IF NOT EXISTS handoff_checkpoints (
    call_id    TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL,
    flow       TEXT NOT NULL,
    state      TEXT NOT NULL,
    saved_at   REAL NOT NULL,
    expires_at REAL NOT NULL,
    data       TEXT NOT NULL
)
"""

_UPSERT = """
INSERT INTO handoff_checkpoints (call_id, seq, flow, state, saved_at, expires_at, data)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(call_id) DO UPDATE SET
    seq = excluded.seq, flow = excluded.flow, state = excluded.state,
    saved_at = excluded.saved_at, expires_at = excluded.expires_at, data = excluded.data
WHERE excluded.seq > handoff_checkpoints.seq OR handoff_checkpoints.expires_at < ?
"""


def connect(path: Path, busy_timeout: float, schema: tuple[str, ...]) -> sqlite3.Connection:
    """A connection shared by several processes: autocommit, WAL, a busy timeout, the
    ``schema`` statements run (``CREATE … IF NOT EXISTS``)."""
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                           check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    for statement in schema:
        conn.execute(statement)
    return conn


class SQLiteFile:
    """One SQLite file a store uses from worker threads: its connection opens on first
    use (with ``schema``), and every use holds ``_lock``."""

    any_thread: ClassVar[bool] = True
    """Usable from any thread: a writer's own thread runs its calls inline."""

    def __init__(self, path: str | Path, busy_timeout: float, schema: tuple[str, ...]) -> None:
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._schema = schema
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        """The open connection (the caller holds ``_lock``)."""
        if self._conn is None:
            self._conn = connect(self.path, self._busy_timeout, self._schema)
        return self._conn

    def _close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def aclose(self) -> None:
        await off_loop(self._close)


class SQLiteStore(SQLiteFile, CheckpointStore):
    """Checkpoints in the SQLite file at ``path`` (created with its table if missing)."""

    kind = "sqlite"

    def __init__(self, path: str | Path, *, ttl: float = DEFAULT_TTL,
                 busy_timeout: float = 5.0) -> None:
        super().__init__(path, busy_timeout, (_SCHEMA,))
        self.ttl = ttl

    def _save(self, checkpoint: Checkpoint) -> bool:
        now = time.time()
        with self._lock:
            cur = self._connection().execute(_UPSERT, (
                checkpoint.call_id, checkpoint.seq, checkpoint.flow, checkpoint.state,
                checkpoint.saved_at, now + self.ttl, checkpoint.to_json(), now,
            ))
            return cur.rowcount > 0

    def _load(self, call_id: str) -> Checkpoint | None:
        with self._lock:
            row = self._connection().execute(
                "SELECT data FROM handoff_checkpoints WHERE call_id = ? AND expires_at >= ?",
                (call_id, time.time()),
            ).fetchone()
        return None if row is None else Checkpoint.from_json(row[0])

    def _list(self, aside: bool) -> list[str]:
        with self._lock:
            rows = self._connection().execute(
                "SELECT call_id FROM handoff_checkpoints WHERE expires_at >= ? ORDER BY call_id",
                (time.time(),)).fetchall()
        return [row[0] for row in rows if (set_aside_from(row[0]) is not None) == aside]

    def _set_aside(self, call_id: str, seq: int | None) -> str | None:
        now = time.time()
        with self._lock:  # one statement: atomic against every other process
            row = self._connection().execute(
                "UPDATE OR REPLACE handoff_checkpoints SET call_id = call_id || ? || seq, "
                "expires_at = ? WHERE call_id = ? AND expires_at >= ? AND (? IS NULL OR seq = ?) "
                "RETURNING call_id", (ASIDE_MARK, now + ASIDE_TTL, call_id, now, seq, seq),
            ).fetchone()
        return None if row is None else str(row[0])

    def _replace(self, checkpoint: Checkpoint, seq: int) -> bool:
        with self._lock:
            cur = self._connection().execute(
                "UPDATE handoff_checkpoints SET seq = ?, flow = ?, state = ?, data = ? "
                "WHERE call_id = ? AND seq = ? AND expires_at >= ?",
                (checkpoint.seq, checkpoint.flow, checkpoint.state, checkpoint.to_json(),
                 checkpoint.call_id, seq, time.time()))
            return cur.rowcount > 0

    def _delete(self, call_id: str) -> None:
        with self._lock:
            self._connection().execute("DELETE FROM handoff_checkpoints WHERE call_id = ?",
                                       (call_id,))

    def _purge(self) -> int:
        with self._lock:
            cur = self._connection().execute(
                "DELETE FROM handoff_checkpoints WHERE expires_at < ?", (time.time(),))
            return cur.rowcount

    async def save(self, checkpoint: Checkpoint) -> bool:
        return await off_loop(self._save, checkpoint)

    async def load(self, call_id: str) -> Checkpoint | None:
        return await off_loop(self._load, call_id)

    async def delete(self, call_id: str) -> None:
        await off_loop(self._delete, call_id)

    async def list_calls(self, *, aside: bool = False) -> list[str]:
        return await off_loop(self._list, aside)

    async def set_aside(self, call_id: str, seq: int | None = None) -> str | None:
        return await off_loop(self._set_aside, call_id, seq)

    async def replace(self, checkpoint: Checkpoint, *, seq: int) -> bool:
        return await off_loop(self._replace, checkpoint, seq)

    async def purge_expired(self) -> int:
        """Delete expired checkpoints; returns how many (run it now and then)."""
        return await off_loop(self._purge)
