"""The checkpoint store interface, and the in-memory store.

A store keeps the latest checkpoint of each call id. ``save`` is conditional: a
checkpoint whose ``seq`` is not greater than the stored one is ignored (returns
False), so a late write from a slower process can never roll a call back.
Stores raise on outages; the :class:`~handoff.persistence.writer.Checkpointer`
turns that into a logged, counted retry, never a failed call.

A checkpoint a worker cannot open (sealed with a key it lacks, a format it does not
read, corrupt) is *set aside* rather than overwritten: :meth:`CheckpointStore.set_aside`
moves it, as stored, to the key ``<call id>#unopened-<seq>`` (:func:`aside_key`), kept
for :data:`ASIDE_TTL` (30 days), so the call's id is free for the call that goes on and
``handoff migrate --recover`` can open it once the key is back.
"""

from __future__ import annotations

import abc
import asyncio
import re
import time
from typing import ClassVar

from .checkpoint import Checkpoint

DEFAULT_TTL = 24 * 3600.0
"""Seconds a checkpoint is kept after its last write (a call is over long before)."""

ASIDE_TTL = 30 * 24 * 3600.0
"""Seconds a set-aside checkpoint is kept (time to bring a lost key back)."""
ASIDE_MARK = "#unopened-"
_ASIDE = re.compile(r"^(?P<call_id>.+)#unopened-(?P<seq>-?\d+)$")


def aside_key(call_id: str, seq: int) -> str:
    """Where the checkpoint ``seq`` of ``call_id`` is kept once set aside."""
    return f"{call_id}{ASIDE_MARK}{seq}"


def set_aside_from(key: str) -> str | None:
    """The call id a set-aside key was moved from, or None for an ordinary call id."""
    match = _ASIDE.match(key)
    return match["call_id"] if match else None


class CheckpointStore(abc.ABC):
    """Latest checkpoint per call id. Implementations: memory, SQLite, Redis."""

    kind: ClassVar[str] = "store"
    """A short name for metrics labels and logs."""
    any_thread: ClassVar[bool] = False
    """Whether the store works from any thread and event loop (its writer then writes
    from a thread of its own); not a client bound to the loop it was first used on."""

    @abc.abstractmethod
    async def save(self, checkpoint: Checkpoint) -> bool:
        """Store ``checkpoint`` unless a newer one (higher ``seq``) is there. True if stored."""

    @abc.abstractmethod
    async def load(self, call_id: str) -> Checkpoint | None:
        """The latest unexpired checkpoint of ``call_id``, or None."""

    @abc.abstractmethod
    async def delete(self, call_id: str) -> None:
        """Forget ``call_id`` (the call ended normally)."""

    async def aclose(self) -> None:  # noqa: B027 - optional
        """Release connections."""

    async def list_calls(self, *, aside: bool = False) -> list[str]:
        """Every call id with an unexpired checkpoint (``handoff migrate`` walks them); with
        ``aside``, instead, the keys of the set-aside checkpoints (:func:`aside_key`)."""
        raise NotImplementedError(f"{type(self).__name__} cannot list its calls")

    async def set_aside(self, call_id: str, seq: int | None = None) -> str | None:
        """Move the call's checkpoint, as stored (readable or not), to :func:`aside_key`
        with a :data:`ASIDE_TTL` expiry, only if it still has ``seq`` (any, when None);
        returns that key, or None when nothing was moved. Atomic on the store."""
        raise NotImplementedError(f"{type(self).__name__} cannot set a checkpoint aside")

    async def replace(self, checkpoint: Checkpoint, *, seq: int) -> bool:
        """Store ``checkpoint`` in place of the call's checkpoint only if that one still has
        ``seq`` (compare-and-set: a worker writing the call meanwhile wins). True if stored.
        The checkpoint keeps its expiry."""
        raise NotImplementedError(f"{type(self).__name__} cannot replace a checkpoint")


class MemoryStore(CheckpointStore):
    """A dict of JSON documents: for tests and single-process development.

    It stores the serialized form, so what ``load`` returns went through the same
    JSON round trip as a real store's.
    """

    kind = "memory"

    def __init__(self, ttl: float = DEFAULT_TTL) -> None:
        self.ttl = ttl
        self._data: dict[str, tuple[int, float, str]] = {}
        self._lock = asyncio.Lock()

    async def save(self, checkpoint: Checkpoint) -> bool:
        async with self._lock:
            current = self._data.get(checkpoint.call_id)
            if current is not None and current[0] >= checkpoint.seq and not self._expired(current):
                return False
            self._data[checkpoint.call_id] = (
                checkpoint.seq, time.time() + self.ttl, checkpoint.to_json()
            )
            return True

    async def load(self, call_id: str) -> Checkpoint | None:
        current = self._data.get(call_id)
        if current is None or self._expired(current):
            return None
        return Checkpoint.from_json(current[2])

    async def delete(self, call_id: str) -> None:
        self._data.pop(call_id, None)

    async def list_calls(self, *, aside: bool = False) -> list[str]:
        return sorted(k for k, v in self._data.items()
                      if not self._expired(v) and (set_aside_from(k) is not None) == aside)

    async def set_aside(self, call_id: str, seq: int | None = None) -> str | None:
        async with self._lock:
            current = self._data.get(call_id)
            if current is None or self._expired(current) or seq not in (None, current[0]):
                return None
            key = aside_key(call_id, current[0])
            self._data[key] = (current[0], time.time() + ASIDE_TTL, current[2])
            del self._data[call_id]
            return key

    async def replace(self, checkpoint: Checkpoint, *, seq: int) -> bool:
        async with self._lock:
            current = self._data.get(checkpoint.call_id)
            if current is None or current[0] != seq or self._expired(current):
                return False
            self._data[checkpoint.call_id] = (checkpoint.seq, current[1], checkpoint.to_json())
            return True

    @staticmethod
    def _expired(entry: tuple[int, float, str]) -> bool:
        return entry[1] < time.time()
