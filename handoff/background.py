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

With a store that works from any thread and event loop (``threaded=True``: the SQLite
stores, whose every call blocks in a thread anyway), the writing happens in one
long-lived thread per writer instead: the call's loop appends to the queue (under
:attr:`BackgroundWriter._lock`) and, for the first item of a burst, arms one timer of
``coalesce`` seconds whose callback puts a kick into the thread's
:class:`queue.SimpleQueue`; the thread, blocked on that queue (no event loop, no GIL),
wakes once, writes what is queued (the store's blocking calls inline there, see
:func:`off_loop`), retries with backoff, and answers :meth:`flush` with
:meth:`~asyncio.AbstractEventLoop.call_soon_threadsafe`. It ends after ``idle_exit``
seconds without a kick (the next burst starts another). Once stopped, no thread starts
again: what is queued after ``aclose`` stays queued (``backlog``), unwritten, as the
store is closed and may be gone (a temporary folder). A store bound to the call's loop
(a Redis client) keeps the task on the call's loop.

A subclass owns its queue (a map of latest checkpoints per call, a deque of events)
and says how to take from it and put back into it; it changes the queue only while
holding ``_lock``, calling :meth:`_ready` before and :meth:`_signal` after (or, threaded,
:meth:`_arm` while still holding it and :meth:`_schedule_kick` after if that said so).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Generic, ParamSpec, TypeVar

W = TypeVar("W")
"""One unit of work: a checkpoint, a batch of events."""
P = ParamSpec("P")
R = TypeVar("R")

_writer_thread = threading.local()
"""``inline`` is set in a writer's own thread: blocking there is what it is for."""


async def off_loop(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``func(*args, **kwargs)`` off the event loop: in a worker thread
    (:func:`asyncio.to_thread`), or inline when already in a writer's own thread."""
    if getattr(_writer_thread, "inline", False):
        return func(*args, **kwargs)
    return await asyncio.to_thread(func, *args, **kwargs)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class BackgroundWriter(ABC, Generic[W]):
    """Writes queued work to a store from one background task (per event loop, or in a
    thread of its own with ``threaded``).

    Args:
        name: the task's name (what a stack dump of the worker shows).
        coalesce: seconds the writer waits after waking, so a turn's burst is one write.
        retry_delay: the first backoff after a failed write (seconds).
        max_retry_delay: the longest backoff after failed writes (seconds).
        threaded: write from a thread of this writer's own (the store works from any
            thread and event loop), not from a task on the call's loop.
        idle_exit: seconds a writer's thread waits for work before it ends.
    """

    def __init__(self, name: str, *, coalesce: float, retry_delay: float,
                 max_retry_delay: float, threaded: bool = False,
                 idle_exit: float = 5.0) -> None:
        self.threaded = threaded
        self.idle_exit = idle_exit
        self.coalesce = coalesce
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self._name = name
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        """Held while the queue changes (the call's loop and a writer thread share it)."""
        self._thread: threading.Thread | None = None
        self._kicks: queue.SimpleQueue[bool] = queue.SimpleQueue()  # True: write; False: stop
        self._armed = False  # a kick is on its way, or the thread is writing
        self._stopping = threading.Event()
        self._closed = False  # stopped: no thread starts again (the store may be gone)
        self._flushers: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def thread(self) -> threading.Thread | None:
        """The writer's own thread while it runs (``threaded``), else None."""
        return self._thread

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
    def _ready(self) -> None:
        """Before queueing: raise RuntimeError without a running event loop (nothing
        could write it), else make sure the writer (and its companions) run."""
        loop = asyncio.get_running_loop()
        if not self.threaded:
            self._ensure_task(loop)
        elif loop is not self._loop and not self._closed:
            self._loop = loop
            self._armed = False  # a timer armed on another loop may never fire
            self._started(loop)

    def _signal(self) -> None:
        """After queueing: make sure the writer will look at the queue."""
        if not self.threaded:
            assert self._wake is not None and self._idle is not None
            self._idle.clear()
            self._wake.set()
            return
        with self._lock:
            if not self._arm():
                return
        self._schedule_kick()

    def _arm(self) -> bool:
        """Threaded, holding ``_lock`` after queueing: whether the caller must
        :meth:`_schedule_kick` (no kick is on its way yet). A subclass that queues under
        ``_lock`` calls this there instead of :meth:`_signal` after it (one lock, not two)."""
        if self._armed or self._closed:
            return False
        self._armed = True
        return True

    def _schedule_kick(self) -> None:
        """Hand the burst to the writer's thread ``coalesce`` seconds from now."""
        assert self._loop is not None
        if self.coalesce > 0:  # let the rest of the burst arrive
            self._loop.call_later(self.coalesce, self._kick)
        else:
            self._loop.call_soon(self._kick)

    def _wake_up(self) -> None:
        """Something was queued: make sure the writer runs and will look at it (raises
        RuntimeError without a running event loop)."""
        self._ready()
        self._signal()

    def _ensure_task(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._task is not None and not self._task.done() and self._loop is loop:
            return
        self._loop = loop
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task = loop.create_task(self._write_loop(), name=self._name)
        self._started(loop)

    # -- the writer's own thread (threaded) ------------------------------------------------
    def _kick(self) -> None:
        """On the call's loop, ``coalesce`` after a burst began: hand it to the thread."""
        with self._lock:
            if self._closed:
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._thread_main, name=self._name,
                                                daemon=True)
                self._thread.start()
        self._kicks.put(True)

    def _thread_main(self) -> None:
        _writer_thread.inline = True
        loop = asyncio.new_event_loop()  # runs the subclass's coroutines, one at a time
        try:
            while self._kicks_or_exit():
                self._drain(loop)
        finally:
            loop.close()

    def _kicks_or_exit(self) -> bool:
        """Wait for a kick: False when stopped, or after ``idle_exit`` seconds without one."""
        while True:
            try:
                go = self._kicks.get(timeout=self.idle_exit)
            except queue.Empty:
                with self._lock:
                    if not self._armed:
                        self._thread = None
                        return False
                continue
            return go

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """Write until nothing is queued, then answer the flushes waiting."""
        lock = self._lock
        delay = self.retry_delay
        while True:
            with lock:
                if not self._queued():
                    self._armed = False
                    flushers, self._flushers = self._flushers, []
                    break
                work = self._take()
            started = time.perf_counter()
            try:
                loop.run_until_complete(self._write(work))
            except Exception as exc:
                with lock:
                    self._settled()
                    self._failed(work, exc, delay)
                if self._stopping.wait(delay):
                    return
                delay = min(delay * 2, self.max_retry_delay)
                continue
            with lock:
                self._settled()
            delay = self.retry_delay
            with contextlib.suppress(Exception):  # upkeep failing is the subclass's to say
                loop.run_until_complete(self._written(work, time.perf_counter() - started))
            if self._stopping.is_set():
                return
        for caller, future in flushers:
            with contextlib.suppress(RuntimeError):  # the caller's loop is closed
                caller.call_soon_threadsafe(_resolve, future)

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
        if self.threaded:
            return await self._flush_thread(timeout)
        if self._idle is None or self._task is None or self._task.done():
            return not self._queued()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _flush_thread(self, timeout: float | None) -> bool:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            if not self._armed and not self._queued():  # nothing queued, nothing writing
                return True
            if self._closed:  # nothing will write it
                return False
            self._flushers.append((loop, future))
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return False
        return True

    async def _stop(self, *companions: asyncio.Task[None] | None) -> None:
        """Stop the writer (its task, or its thread after the write under way) and
        ``companions``, and wait for them to end."""
        if self.threaded:
            with self._lock:
                thread, self._thread, self._closed, self._loop = self._thread, None, True, None
            if thread is not None:
                self._stopping.set()
                self._kicks.put(False)
                await asyncio.to_thread(thread.join)
        for task in (self._task, *companions):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = None
