"""SQLiteEventStore: the event log in one SQLite file, the embedded default.

Like the checkpoint store (:mod:`handoff.persistence.sqlite`): stdlib ``sqlite3`` in
a worker thread, WAL mode so the inspector reads while workers write, a busy timeout
so several processes on one machine share the file. A batch is one transaction, so
a writer killed mid-write leaves the log at the end of its last whole batch.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..background import off_loop
from ..persistence.sqlite import SQLiteFile
from .event import CallSummary, Event, summarise
from .store import EventStore, Retention, expired

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS handoff_events (
        call_id TEXT NOT NULL, seq INTEGER NOT NULL, at REAL NOT NULL, kind TEXT NOT NULL,
        data TEXT NOT NULL, PRIMARY KEY (call_id, seq))""",
    """CREATE TABLE IF NOT EXISTS handoff_event_calls (
        call_id TEXT PRIMARY KEY, flow TEXT NOT NULL, flow_version TEXT NOT NULL,
        state TEXT NOT NULL, started_at REAL NOT NULL, updated_at REAL NOT NULL,
        seen_at REAL NOT NULL, last_seq INTEGER NOT NULL, events INTEGER NOT NULL,
        ended INTEGER NOT NULL, end_reason TEXT, writer TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS handoff_event_calls_updated ON handoff_event_calls (updated_at)",
    """CREATE TABLE IF NOT EXISTS handoff_event_flows (
        flow TEXT NOT NULL, version TEXT NOT NULL, dot TEXT NOT NULL, PRIMARY KEY (flow, version))""",
)

_UPSERT_CALL = """
INSERT INTO handoff_event_calls (call_id, flow, flow_version, state, started_at, updated_at,
    seen_at, last_seq, events, ended, end_reason, writer)
VALUES (:call_id, :flow, :flow_version, :state, :started_at, :updated_at, :seen_at, :last_seq,
    :events, :ended, :end_reason, :writer)
ON CONFLICT(call_id) DO UPDATE SET
    state = excluded.state, flow_version = excluded.flow_version,
    updated_at = MAX(updated_at, excluded.updated_at), seen_at = excluded.seen_at,
    last_seq = MAX(last_seq, excluded.last_seq), events = events + excluded.events,
    ended = excluded.ended, end_reason = excluded.end_reason, writer = excluded.writer
"""
_COLUMNS = ("call_id", "flow", "flow_version", "state", "started_at", "updated_at", "seen_at",
            "last_seq", "events", "ended", "end_reason", "writer")


class SQLiteEventStore(SQLiteFile, EventStore):
    """The event log in the SQLite file at ``path`` (created with its tables if missing)."""

    kind = "sqlite"

    def __init__(self, path: str | Path, *, retention: Retention | None = None,
                 busy_timeout: float = 5.0) -> None:
        super().__init__(path, busy_timeout, _SCHEMA)
        self.retention = retention or Retention()

    def _append(self, batch: Sequence[Event], writer: str) -> None:
        summaries = summarise(batch, time.time(), writer)
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT OR IGNORE INTO handoff_events (call_id, seq, at, kind, data) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(e.call_id, e.seq, e.at, e.kind, e.to_json()) for e in batch])
                conn.executemany(_UPSERT_CALL, [s.to_dict() for s in summaries.values()])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _touch(self, call_ids: list[str], now: float) -> None:
        with self._lock:
            self._connection().executemany(
                "UPDATE handoff_event_calls SET seen_at = ? WHERE call_id = ?",
                [(now, c) for c in call_ids])

    def _events(self, call_id: str, after: int, limit: int) -> list[Event]:
        with self._lock:
            rows = self._connection().execute(
                "SELECT data FROM handoff_events WHERE call_id = ? AND seq > ? "
                "ORDER BY seq LIMIT ?", (call_id, after, limit)).fetchall()
        return [Event.from_json(r[0]) for r in rows]

    def _calls(self, where: str, args: tuple[object, ...]) -> list[CallSummary]:
        with self._lock:
            rows = self._connection().execute(
                f"SELECT {', '.join(_COLUMNS)} FROM handoff_event_calls {where}", args).fetchall()
        return [CallSummary.from_dict(dict(zip(_COLUMNS, row, strict=True))) for row in rows]

    def _put_flow(self, flow: str, version: str, dot: str) -> None:
        with self._lock:
            self._connection().execute(
                "INSERT OR REPLACE INTO handoff_event_flows (flow, version, dot) VALUES (?, ?, ?)",
                (flow, version, dot))

    def _flow_source(self, flow: str, version: str) -> str | None:
        with self._lock:
            row = self._connection().execute(
                "SELECT dot FROM handoff_event_flows WHERE flow = ? AND version = ?",
                (flow, version)).fetchone()
        return None if row is None else str(row[0])

    def _purge(self, now: float) -> int:
        doomed = expired(self._calls("", ()), self.retention, now)
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                for call_id in doomed:
                    conn.execute("DELETE FROM handoff_events WHERE call_id = ?", (call_id,))
                    conn.execute("DELETE FROM handoff_event_calls WHERE call_id = ?", (call_id,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return len(doomed)

    async def append(self, batch: Sequence[Event], *, writer: str = "") -> None:
        if batch:
            await off_loop(self._append, batch, writer)

    async def touch(self, call_ids: Iterable[str], now: float) -> None:
        ids = list(call_ids)
        if ids:
            await off_loop(self._touch, ids, now)

    async def events(self, call_id: str, after: int = 0, limit: int = 10_000) -> list[Event]:
        return await off_loop(self._events, call_id, after, limit)

    async def call(self, call_id: str) -> CallSummary | None:
        found = await off_loop(self._calls, "WHERE call_id = ?", (call_id,))
        return found[0] if found else None

    async def calls(self, limit: int = 100) -> list[CallSummary]:
        return await off_loop(self._calls, "ORDER BY updated_at DESC LIMIT ?", (limit,))

    async def put_flow(self, flow: str, version: str, dot: str) -> None:
        await off_loop(self._put_flow, flow, version, dot)

    async def flow_source(self, flow: str, version: str) -> str | None:
        return await off_loop(self._flow_source, flow, version)

    async def purge(self, now: float | None = None) -> int:
        return await off_loop(self._purge, time.time() if now is None else now)
