"""The event log of calls: what happened, step by step, for the inspector and replay.

    from handoff.events import EventLog, SQLiteEventStore
    events = EventLog(SQLiteEventStore("events.db")).install(flow)
    events.track(run, call_id)

- :class:`Event`, :data:`KINDS`: what is recorded (every kind, with its data);
- stores: :class:`MemoryEventStore`, :class:`SQLiteEventStore` (embedded default),
  ``RedisEventStore`` (Redis Streams, many workers; the ``redis`` extra);
- :class:`EventLog`: records tracked calls on their path, writes off it;
- :class:`Retention`: how long and how many calls a store keeps;
- :class:`Recording`: the calls of one program (chat, console, demo, test), recorded and
  written out when it ends; :func:`default_store_path`, where ``--inspect`` records.
"""

from typing import Any

from .event import KINDS, CallStatus, CallSummary, Event, EventKind
from .recorder import EventLog
from .recording import Recording
from .sqlite import SQLiteEventStore
from .store import EventStore, MemoryEventStore, Retention
from .stores import (
    default_store_path,
    event_store_from_env,
    open_event_store,
    store_or_default,
)

__all__ = [
    "KINDS",
    "CallStatus",
    "CallSummary",
    "Event",
    "EventKind",
    "EventLog",
    "EventStore",
    "MemoryEventStore",
    "Recording",
    "RedisEventStore",
    "Retention",
    "SQLiteEventStore",
    "default_store_path",
    "event_store_from_env",
    "open_event_store",
    "store_or_default",
]


def __getattr__(name: str) -> Any:
    if name == "RedisEventStore":  # the redis package is an optional extra
        from .redis_store import RedisEventStore

        return RedisEventStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
