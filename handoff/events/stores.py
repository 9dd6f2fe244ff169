"""Which event store: one opened by URL, the one the environment configures, the default file.

``HANDOFF_EVENT_STORE`` (``redis://…``, ``sqlite:///path``, ``off``), else next to the
checkpoints; ``--inspect`` and bare ``handoff inspect`` fall back to
:func:`default_store_path`, one SQLite file per user.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import ConfigError
from ..settings import StoreSettings
from .sqlite import SQLiteEventStore
from .store import EventStore, Retention

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
    ``HANDOFF_EVENT_RETENTION_DAYS`` and ``HANDOFF_EVENT_MAX_CALLS`` bound what is kept
    (all :class:`~handoff.settings.StoreSettings`, also ``[tool.handoff.stores]``).
    """
    settings = StoreSettings.load(environ)
    retention = Retention(max_age=settings.event_retention_days * 24 * 3600,
                          max_calls=settings.event_max_calls)
    url = settings.event_store
    if url == "off":
        return None
    if url:
        return open_event_store(url, retention)
    checkpoints = settings.checkpoint_store
    if checkpoints.startswith(("redis://", "rediss://")):
        return open_event_store(checkpoints, retention)
    if checkpoints.startswith("sqlite:///"):
        folder = Path(checkpoints.removeprefix("sqlite://")).parent
    elif settings.checkpoint_dir:
        folder = Path(settings.checkpoint_dir)
    else:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    return SQLiteEventStore(folder / EVENTS_FILE, retention=retention)


def default_store_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where ``--inspect`` records when no store is configured, and bare ``handoff inspect``
    reads: ``$XDG_STATE_HOME/handoff/events.db`` (``~/.local/state/handoff/events.db``)."""
    env = os.environ if environ is None else environ
    state = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return (Path(state) / "handoff" / EVENTS_FILE).absolute()


def store_or_default(environ: Mapping[str, str] | None = None) -> EventStore:
    """The store the environment configures (``HANDOFF_EVENT_STORE``, else next to the
    checkpoints), else the SQLite file at :func:`default_store_path`."""
    store = event_store_from_env(environ)
    if store is None:
        path = default_store_path(environ)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot make {path.parent} for the event store ({exc.strerror}): "
                              "set HANDOFF_EVENT_STORE=sqlite:///path/events.db or "
                              "XDG_STATE_HOME") from exc
        store = SQLiteEventStore(path)
    return store


def describe(store: EventStore) -> str:
    """The store as a person would find it again: the SQLite file's path, else its kind."""
    return str(store.path) if isinstance(store, SQLiteEventStore) else f"the {store.kind} event store"
