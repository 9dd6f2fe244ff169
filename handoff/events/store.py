"""The event store interface, its retention, and the in-memory store.

A store appends batches of events (in the order given), keeps a summary per call
(:class:`~handoff.events.event.CallSummary`) and the diagram source of each flow
version that wrote to it, so a reader (``handoff inspect``) needs no flow code.
Stores raise on outages; the :class:`~handoff.events.recorder.EventLog` turns that
into a logged retry off the call's path.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from .event import CallSummary, Event, summarise


@dataclass(frozen=True, slots=True)
class Retention:
    """How much a store keeps: calls younger than ``max_age`` seconds (since their last
    event), and at most ``max_calls`` of them (the most recently updated)."""

    max_age: float = 7 * 24 * 3600.0
    max_calls: int = 10_000

    def __post_init__(self) -> None:
        if self.max_age <= 0 or self.max_calls < 1:
            raise ValueError("retention needs max_age > 0 and max_calls >= 1")


class EventStore(abc.ABC):
    """Events per call, call summaries, flow diagrams. Implementations: memory, SQLite, Redis."""

    kind: ClassVar[str] = "store"
    retention: Retention
    any_thread: ClassVar[bool] = False
    """Whether the store works from any thread and event loop (its writer then writes
    from a thread of its own); not a client bound to the loop it was first used on."""

    @abc.abstractmethod
    async def append(self, batch: Sequence[Event], *, writer: str = "") -> None:
        """Store ``batch`` (in order) and update the summaries of its calls."""

    @abc.abstractmethod
    async def touch(self, call_ids: Iterable[str], now: float) -> None:
        """A writer's heartbeat: its calls ``call_ids`` are still live at ``now``."""

    @abc.abstractmethod
    async def events(self, call_id: str, after: int = 0, limit: int = 10_000) -> list[Event]:
        """The call's events with ``seq > after``, oldest first."""

    @abc.abstractmethod
    async def call(self, call_id: str) -> CallSummary | None:
        """The call's summary, or None when the store has no such call."""

    @abc.abstractmethod
    async def calls(self, limit: int = 100) -> list[CallSummary]:
        """The most recently updated calls first."""

    @abc.abstractmethod
    async def put_flow(self, flow: str, version: str, dot: str) -> None:
        """Keep the DOT source of a flow version (the inspector draws it)."""

    @abc.abstractmethod
    async def flow_source(self, flow: str, version: str) -> str | None:
        """The DOT source kept by :meth:`put_flow`, or None."""

    @abc.abstractmethod
    async def purge(self, now: float | None = None) -> int:
        """Apply the retention; returns how many calls were forgotten."""

    async def aclose(self) -> None:  # noqa: B027 - optional
        """Release connections."""


class MemoryEventStore(EventStore):
    """Everything in this process's memory: ``handoff chat --inspect`` and tests."""

    kind = "memory"

    def __init__(self, retention: Retention | None = None) -> None:
        self.retention = retention or Retention()
        self._events: dict[str, list[str]] = {}  # stored as JSON, like a real store
        self._calls: dict[str, CallSummary] = {}
        self._flows: dict[tuple[str, str], str] = {}
        self._lock = asyncio.Lock()

    async def append(self, batch: Sequence[Event], *, writer: str = "") -> None:
        async with self._lock:
            now = time.time()
            for event in batch:
                self._events.setdefault(event.call_id, []).append(event.to_json())
            for call_id, update in summarise(batch, now, writer).items():
                self._calls[call_id] = merge(self._calls.get(call_id), update)

    async def touch(self, call_ids: Iterable[str], now: float) -> None:
        for call_id in call_ids:
            if (summary := self._calls.get(call_id)) is not None:
                summary.seen_at = now

    async def events(self, call_id: str, after: int = 0, limit: int = 10_000) -> list[Event]:
        found = (Event.from_json(e) for e in self._events.get(call_id, ()))
        return [e for e in found if e.seq > after][:limit]

    async def call(self, call_id: str) -> CallSummary | None:
        summary = self._calls.get(call_id)
        return None if summary is None else CallSummary.from_dict(summary.to_dict())

    async def calls(self, limit: int = 100) -> list[CallSummary]:
        ordered = sorted(self._calls.values(), key=lambda s: s.updated_at, reverse=True)
        return [CallSummary.from_dict(s.to_dict()) for s in ordered[:limit]]

    async def put_flow(self, flow: str, version: str, dot: str) -> None:
        self._flows[(flow, version)] = dot

    async def flow_source(self, flow: str, version: str) -> str | None:
        return self._flows.get((flow, version))

    async def purge(self, now: float | None = None) -> int:
        async with self._lock:
            doomed = expired(self._calls.values(), self.retention, time.time() if now is None else now)
            for call_id in doomed:
                self._calls.pop(call_id, None)
                self._events.pop(call_id, None)
            return len(doomed)


def merge(current: CallSummary | None, update: CallSummary) -> CallSummary:
    """``update`` (from :func:`~handoff.events.event.summarise`) merged into ``current``."""
    if current is None:
        return update
    current.state = update.state
    current.flow_version = update.flow_version
    current.updated_at = max(current.updated_at, update.updated_at)
    current.seen_at = update.seen_at
    current.last_seq = max(current.last_seq, update.last_seq)
    current.events += update.events
    current.ended = update.ended
    current.end_reason = update.end_reason
    current.writer = update.writer
    return current


def expired(calls: Iterable[CallSummary], retention: Retention, now: float) -> list[str]:
    """Call ids beyond the retention: too old, or past the ``max_calls`` most recent."""
    ordered = sorted(calls, key=lambda s: s.updated_at, reverse=True)
    doomed = [s.call_id for s in ordered[retention.max_calls:]]
    doomed += [s.call_id for s in ordered[:retention.max_calls]
               if s.updated_at < now - retention.max_age]
    return doomed
