"""Checkpoints of calls, so a call survives the worker that runs it.

    from handoff.persistence import Checkpointer, SQLiteStore
    checkpointer = Checkpointer(SQLiteStore("checkpoints.db"))

- :class:`Checkpoint`: the versioned document (state, Context, log, recent history);
- stores: :class:`MemoryStore`, :class:`SQLiteStore`, ``RedisStore`` (needs the
  ``redis`` extra; imported on first use);
- :class:`Checkpointer`: takes checkpoints on the call's path, writes them off it.

Resuming a call is :func:`handoff.resume.resume_or_start`.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..settings import StoreSettings
from .checkpoint import FORMAT, Checkpoint, CheckpointFormatError, Sealer, capture
from .sqlite import SQLiteStore
from .store import DEFAULT_TTL, CheckpointStore, MemoryStore
from .writer import Checkpointer

__all__ = [
    "DEFAULT_TTL",
    "FORMAT",
    "Checkpoint",
    "CheckpointFormatError",
    "CheckpointStore",
    "Checkpointer",
    "MemoryStore",
    "RedisStore",
    "SQLiteStore",
    "Sealer",
    "capture",
    "store_from_env",
    "store_from_url",
]


def store_from_env(environ: Mapping[str, str] | None = None) -> CheckpointStore | None:
    """The checkpoint store a worker is configured with, or None (no checkpoints).

    ``HANDOFF_CHECKPOINT_STORE``: ``redis://host:port/db`` (many workers) or
    ``sqlite:///path/to/file.db``; else ``HANDOFF_CHECKPOINT_DIR`` holds a SQLite file
    ``checkpoints.db`` (the embedded default, several processes on one machine). Both
    are :class:`~handoff.settings.StoreSettings` (also ``[tool.handoff.stores]``); a bad
    value is a one-line :class:`ConfigError` naming the variable or the key.
    """
    settings = StoreSettings.load(environ)
    if settings.checkpoint_store:
        return store_from_url(settings.checkpoint_store)
    if settings.checkpoint_dir:
        Path(settings.checkpoint_dir).mkdir(parents=True, exist_ok=True)
        return SQLiteStore(Path(settings.checkpoint_dir) / "checkpoints.db")
    return None


def store_from_url(url: str) -> CheckpointStore:
    """The store at ``url``: ``redis://host:port/db`` (or ``rediss://``) or ``sqlite:///path``."""
    if url.startswith(("redis://", "rediss://")):
        from .redis_store import RedisStore

        return RedisStore(url)
    if url.startswith("sqlite:///"):
        return SQLiteStore(url.removeprefix("sqlite://"))
    raise ConfigError(f"{url!r}: use redis://… or sqlite:///path")


def __getattr__(name: str) -> Any:
    if name == "RedisStore":  # the redis package is an optional extra
        from .redis_store import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
