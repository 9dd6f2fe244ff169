"""Deadline: a tool's timeout that stops while the caller is talking to a sub-task; and
whether code runs inside an agent's turn (a tool, a transition body or a hook).

A tool or transition body may run at most its state's ``tool_timeout``: a hung database
must not freeze the call. But a tool that awaits a LiveKit ``AgentTask`` (``await
GetEmailTask()``) is not hung while the task talks with the caller. The run pauses the
deadline of the tool whose task became active and restarts it, for a full period, when
the state's agent is back::

    async with Deadline(30.0):
        await tool()          # Deadline.current() is this one, inside the tool's task
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import Context, ContextVar, Token
from types import TracebackType

_CURRENT: ContextVar[Deadline | None] = ContextVar("handoff_deadline", default=None)
_IN_HOOK: ContextVar[list[bool] | None] = ContextVar("handoff_in_hook", default=None)
"""While a hook runs: a cell holding True. Tasks started from the hook copy the variable
but share the cell, which the hook clears when it returns."""


def in_agent_code() -> bool:
    """True inside a State's tool, transition body or hook, or a task started from one
    while that hook still runs: code a turn of the session is waiting for, which must
    never wait for a handoff (the handoff waits for the turn). ``run.go()`` returns at once
    there. A task a hook started and left running (a timer) is on its own once the hook has
    returned: its ``run.go()`` waits for the move like any other code."""
    cell = _IN_HOOK.get()
    return (cell is not None and cell[0]) or _CURRENT.get() is not None


@contextmanager
def hook_scope() -> Iterator[None]:
    """Mark the code inside as an agent's hook (``on_enter``/``on_exit``)."""
    cell = [True]
    token = _IN_HOOK.set(cell)
    try:
        yield
    finally:
        cell[0] = False
        _IN_HOOK.reset(token)


class Deadline:
    """A tool's or body's timeout, as ``asyncio.timeout(seconds)`` (the task is cancelled at
    the deadline and ``TimeoutError`` raised in its place; a cancellation from elsewhere goes
    through untouched), that can be paused and restarted from the same task.

    A plain context manager, usable with ``async with`` too, with no coroutine of its own
    and no timer of its own: the deadlines of a loop share one timer (:class:`_Keeper`), so
    entering and leaving, around every tool call of a turn, only push to and mark a heap."""

    __slots__ = ("_cancelling", "_entry", "_expired", "_task", "_token", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._task: asyncio.Task[object] | None = None
        self._entry: _Entry | None = None  # the live entry in the loop's keeper, if armed
        self._token: Token[Deadline | None] | None = None
        self._expired = False
        self._cancelling = 0

    @staticmethod
    def current() -> Deadline | None:
        """The deadline of the tool or body running in this task, if any."""
        return _CURRENT.get()

    @property
    def armed(self) -> bool:
        """True while the deadline runs (entered, not paused, not expired, not left)."""
        return self._entry is not None

    def pause(self) -> None:
        """No timeout until :meth:`restart` (a sub-task is talking with the caller)."""
        self._entry = None  # the keeper drops an entry that is no longer its deadline's

    def restart(self) -> None:
        """A full period from now (the state's agent is back)."""
        if self._task is not None and not self._expired:
            self._schedule()

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        self._entry = keeper_of(loop).add(self, loop.time() + self.seconds)

    def _expire(self) -> None:
        self._entry = None
        if self._task is not None:
            self._expired = True
            self._task.cancel()

    def __enter__(self) -> Deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a Deadline is used inside a task")
        self._task, self._cancelling = task, task.cancelling()
        self._schedule()
        self._token = _CURRENT.set(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None
        self._entry = None
        task, self._task = self._task, None
        # as asyncio.timeout: only the cancellation this deadline made becomes a timeout
        if (self._expired and task is not None and task.uncancel() <= self._cancelling
                and kind is asyncio.CancelledError):
            raise TimeoutError from exc

    async def __aenter__(self) -> Deadline:
        return self.__enter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(kind, exc, tb)


_Entry = tuple[float, int, Deadline]
"""(when, order, deadline): live while ``deadline._entry`` is this very tuple."""


class _Keeper:
    """One loop timer for all the deadlines of an event loop.

    A deadline pushes an entry to a heap; pausing or leaving only forgets its entry (the
    entry stays in the heap, dead, until the timer reaches it or the heap is compacted).
    The timer is armed for the earliest entry and re-armed only when an earlier one comes:
    a tool call that ends in time costs a heap push, not a timer made and cancelled."""

    __slots__ = ("armed_for", "compact_at", "handle", "heap", "loop", "order")

    COMPACT_AT = 256
    """Heap size from which dead entries are cleared out as a new one comes (a burst of
    short calls under long timeouts would otherwise keep them until the first is due); after
    a clear-out, the next comes at twice what stayed, so many live deadlines at once do not
    make every new one scan the heap."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.heap: list[_Entry] = []
        self.handle: asyncio.TimerHandle | None = None
        self.armed_for = math.inf
        self.order = itertools.count()
        self.compact_at = self.COMPACT_AT

    def add(self, deadline: Deadline, when: float) -> _Entry:
        entry = (when, next(self.order), deadline)
        heap = self.heap
        if len(heap) >= self.compact_at:
            heap[:] = [e for e in heap if e[2]._entry is e]
            heapq.heapify(heap)
            self.compact_at = max(self.COMPACT_AT, 2 * len(heap))
        heapq.heappush(heap, entry)
        if when < self.armed_for:
            self._arm(when)
        return entry

    def _arm(self, when: float) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.armed_for = when
        # in a context of its own: the timer outlives the call that armed it, and must not
        # keep that call's context variables (its session, its speech) alive until it fires
        self.handle = self.loop.call_at(when, self._fire, context=_TIMER_CONTEXT)

    def _fire(self) -> None:
        due, heap = self.armed_for, self.heap
        self.handle, self.armed_for = None, math.inf
        while heap and (heap[0][0] <= due or heap[0][2]._entry is not heap[0]):
            entry = heapq.heappop(heap)
            if entry[2]._entry is entry:
                entry[2]._expire()
        if heap:
            self._arm(heap[0][0])


_TIMER_CONTEXT = Context()
"""The (empty) context the keepers' timers run in."""

_LOCAL = threading.local()
"""The keeper of the loop this thread ran a deadline on last (a thread runs one loop at a
time; a deadline on another loop makes that loop's keeper the thread's, and the previous
keeper's entries still fire, from the timer it armed on its own loop)."""


def keeper_of(loop: asyncio.AbstractEventLoop) -> _Keeper:
    """The keeper of ``loop``, the running loop of this thread."""
    keeper: _Keeper | None = getattr(_LOCAL, "keeper", None)
    if keeper is None or keeper.loop is not loop:
        keeper = _LOCAL.keeper = _Keeper(loop)
    return keeper
