"""The event log of calls: what happened, step by step, for the inspector and replay.

    from handoff.events import EventLog, SQLiteEventStore
    events = EventLog(SQLiteEventStore("events.db")).install(flow)
    events.track(run, call_id)

- :class:`Event`, :data:`KINDS`: what is recorded (every kind, with its data);
- stores: :class:`MemoryEventStore`, :class:`SQLiteEventStore` (embedded default),
  ``RedisEventStore`` (Redis Streams, many workers; the ``redis`` extra);
- :class:`EventLog`: records tracked calls on their path, writes off it;
- :class:`Retention`: how long and how many calls a store keeps.
"""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .event import KINDS, CallStatus, CallSummary, Event, EventKind
from .recorder import EventLog
from .sqlite import SQLiteEventStore
from .store import EventStore, MemoryEventStore, Retention

__all__ = [
    "KINDS",
    "CallStatus",
    "CallSummary",
    "Event",
    "EventKind",
    "EventLog",
    "EventStore",
    "MemoryEventStore",
    "RedisEventStore",
    "Retention",
    "SQLiteEventStore",
    "event_store_from_env",
    "open_event_store",
]

EVENTS_FILE = "events.db"


def open_event_store(url: str, retention: Retention | None = None) -> EventStore:
    """The store at ``url``: ``redis://host:port/db`` or ``sqlite:///path/to/events.db``."""
    if url.startswith(("redis://", "rediss://")):
        from .redis_store import RedisEventStore

        return RedisEventStore(url, retention=retention)
    if url.startswith("sqlite:///"):
        return SQLiteEventStore(url.removeprefix("sqlite://"), retention=retention)
    raise ConfigError(f"event store {url!r}: use redis://host:port/db or sqlite:///path/to/events.db")


def event_store_from_env(environ: Mapping[str, str] | None = None) -> EventStore | None:
    """The event store a worker is configured with, or None (no event log).

    ``HANDOFF_EVENT_STORE``: ``redis://…`` or ``sqlite:///path`` (``off`` disables it).
    Unset, it sits next to the checkpoints: the same Redis as ``HANDOFF_CHECKPOINT_STORE``,
    or ``events.db`` beside its SQLite file or in ``HANDOFF_CHECKPOINT_DIR``.
    ``HANDOFF_EVENT_RETENTION_DAYS`` and ``HANDOFF_EVENT_MAX_CALLS`` bound what is kept.
    """
    env = os.environ if environ is None else environ
    retention = Retention(
        max_age=float(env.get("HANDOFF_EVENT_RETENTION_DAYS", 7)) * 24 * 3600,
        max_calls=int(env.get("HANDOFF_EVENT_MAX_CALLS", 10_000)))
    url = env.get("HANDOFF_EVENT_STORE", "")
    if url == "off":
        return None
    if url:
        return open_event_store(url, retention)
    checkpoints = env.get("HANDOFF_CHECKPOINT_STORE", "")
    if checkpoints.startswith(("redis://", "rediss://")):
        return open_event_store(checkpoints, retention)
    if checkpoints.startswith("sqlite:///"):
        folder = Path(checkpoints.removeprefix("sqlite://")).parent
    elif env.get("HANDOFF_CHECKPOINT_DIR"):
        folder = Path(env["HANDOFF_CHECKPOINT_DIR"])
    else:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    return SQLiteEventStore(folder / EVENTS_FILE, retention=retention)


def __getattr__(name: str) -> Any:
    if name == "RedisEventStore":  # the redis package is an optional extra
        from .redis_store import RedisEventStore

        return RedisEventStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
