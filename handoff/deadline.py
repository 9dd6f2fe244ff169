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
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
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

    A plain context manager, usable with ``async with`` too: entering schedules one timer
    on the loop and leaving cancels it, with no coroutine of its own (it runs around every
    tool call of a turn)."""

    __slots__ = ("_cancelling", "_expired", "_handle", "_task", "_token", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._task: asyncio.Task[object] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._token: Token[Deadline | None] | None = None
        self._expired = False
        self._cancelling = 0

    @staticmethod
    def current() -> Deadline | None:
        """The deadline of the tool or body running in this task, if any."""
        return _CURRENT.get()

    def pause(self) -> None:
        """No timeout until :meth:`restart` (a sub-task is talking with the caller)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def restart(self) -> None:
        """A full period from now (the state's agent is back)."""
        if self._task is not None and not self._expired:
            self.pause()
            self._schedule()

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        self._handle = loop.call_at(loop.time() + self.seconds, self._expire)

    def _expire(self) -> None:
        self._handle = None
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
        self.pause()
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
