"""BackgroundWriter: the one pattern behind checkpoints and the event log.

Both take something small on the call's path (microseconds) and write it to a store
off it. One task per event loop does the writing:

- it sleeps until woken by :meth:`BackgroundWriter._wake_up`, then waits ``coalesce``
  seconds so that the burst of a turn (the caller's line, tool calls, a handoff, the
  reply) becomes one write, not five;
- it takes one unit of work (:meth:`_take`), writes it (:meth:`_write`) and reports
  success (:meth:`_written`);
- a failed write (a store outage) is reported (:meth:`_failed`, which puts the work
  back or drops it) and retried with exponential backoff from ``retry_delay`` up to
  ``max_retry_delay``; the call never notices;
- :meth:`flush` waits until nothing is queued, :meth:`stop` cancels the task.

A subclass owns its queue (a map of latest checkpoints per call, a deque of events)
and says how to take from it and put back into it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from typing import Generic, TypeVar

W = TypeVar("W")
"""One unit of work: a checkpoint, a batch of events."""


class BackgroundWriter(ABC, Generic[W]):
    """Writes queued work to a store from one background task per event loop.

    Args:
        name: the task's name (what a stack dump of the worker shows).
        coalesce: seconds the writer waits after waking, so a turn's burst is one write.
        retry_delay: the first backoff after a failed write (seconds).
        max_retry_delay: the longest backoff after failed writes (seconds).
    """

    def __init__(self, name: str, *, coalesce: float, retry_delay: float,
                 max_retry_delay: float) -> None:
        self.coalesce = coalesce
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self._name = name
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- what a subclass says ------------------------------------------------------------
    @abstractmethod
    def _queued(self) -> bool:
        """Whether anything waits to be written."""

    @abstractmethod
    def _take(self) -> W:
        """Remove the next unit of work from the queue (called only when :meth:`_queued`)."""

    @abstractmethod
    async def _write(self, work: W) -> None:
        """Write ``work`` to the store; raise on failure."""

    @abstractmethod
    def _put_back(self, work: W) -> None:
        """Return ``work`` to the queue, to be written again (the writer was cancelled
        mid-write); a newer item of the same kind may replace it."""

    @abstractmethod
    def _failed(self, work: W, exc: Exception, retry_in: float) -> None:
        """``work`` was not written: say so, then put it back (or drop what must go)."""

    async def _written(self, work: W, seconds: float) -> None:
        """``work`` is in the store; it took ``seconds`` (may do upkeep: a retention pass)."""

    def _settled(self) -> None:
        """A write attempt is over, whatever its outcome (forget the work in flight)."""

    def _started(self, loop: asyncio.AbstractEventLoop) -> None:
        """The writer task was (re)started on ``loop``: start companions (a heartbeat)."""

    # -- the writer ------------------------------------------------------------------------
    def _wake_up(self) -> None:
        """Something was queued: make sure the writer runs and will look at it.

        Raises RuntimeError without a running event loop (nothing could write it).
        """
        self._ensure_task()
        assert self._wake is not None and self._idle is not None
        self._idle.clear()
        self._wake.set()

    def _ensure_task(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._loop is loop:
            return
        self._loop = loop
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task = loop.create_task(self._write_loop(), name=self._name)
        self._started(loop)

    async def _write_loop(self) -> None:
        assert self._wake is not None and self._idle is not None
        delay = self.retry_delay
        while True:
            if not self._queued():
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                if self.coalesce > 0:  # let the rest of the burst arrive
                    await asyncio.sleep(self.coalesce)
                continue
            work = self._take()
            started = time.perf_counter()
            try:
                await self._write(work)
            except asyncio.CancelledError:
                self._put_back(work)
                raise
            except Exception as exc:
                self._settled()
                self._failed(work, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)
                continue
            finally:
                self._settled()
            delay = self.retry_delay
            await self._written(work, time.perf_counter() - started)

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued is written. False on timeout."""
        if self._idle is None or self._task is None or self._task.done():
            return not self._queued()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _stop(self, *companions: asyncio.Task[None] | None) -> None:
        """Cancel the writer task (and ``companions``) and wait for them to end."""
        for task in (self._task, *companions):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = None
