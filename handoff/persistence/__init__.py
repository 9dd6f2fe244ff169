"""Checkpoints of calls, so a call survives the worker that runs it.

    from handoff.persistence import Checkpointer, SQLiteStore
    checkpointer = Checkpointer(SQLiteStore("checkpoints.db"))

- :class:`Checkpoint`: the versioned document (state, Context, log, recent history);
- stores: :class:`MemoryStore`, :class:`SQLiteStore`, ``RedisStore`` (needs the
  ``redis`` extra; imported on first use);
- :class:`Checkpointer`: takes checkpoints on the call's path, writes them off it.

Resuming a call is :func:`handoff.resume.resume_or_start`.
"""

from typing import Any

from .checkpoint import FORMAT, Checkpoint, CheckpointFormatError, Sealer, snapshot
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
    "snapshot",
]


def __getattr__(name: str) -> Any:
    if name == "RedisStore":  # the redis package is an optional extra
        from .redis_store import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
