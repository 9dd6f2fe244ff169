"""The checkpoint store interface, and the in-memory store.

A store keeps the latest checkpoint of each call id. ``save`` is conditional: a
checkpoint whose ``seq`` is not greater than the stored one is ignored (returns
False), so a late write from a slower process can never roll a call back.
Stores raise on outages; the :class:`~handoff.persistence.writer.Checkpointer`
turns that into a logged, counted retry, never a failed call.
"""

from __future__ import annotations

import abc
import asyncio
import time
from typing import ClassVar

from .checkpoint import Checkpoint

DEFAULT_TTL = 24 * 3600.0
"""Seconds a checkpoint is kept after its last write (a call is over long before)."""


class CheckpointStore(abc.ABC):
    """Latest checkpoint per call id. Implementations: memory, SQLite, Redis."""

    kind: ClassVar[str] = "store"
    """A short name for metrics labels and logs."""

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

    async def list_calls(self) -> list[str]:
        """Every call id with an unexpired checkpoint (``handoff migrate`` walks them)."""
        raise NotImplementedError(f"{type(self).__name__} cannot list its calls")

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

    async def list_calls(self) -> list[str]:
        return [k for k, v in self._data.items() if not self._expired(v)]

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
