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
    """``asyncio.timeout(seconds)`` that can be paused and restarted from the same task."""

    __slots__ = ("_timeout", "_token", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._timeout: asyncio.Timeout | None = None
        self._token: Token[Deadline | None] | None = None

    @staticmethod
    def current() -> Deadline | None:
        """The deadline of the tool or body running in this task, if any."""
        return _CURRENT.get()

    def pause(self) -> None:
        """No timeout until :meth:`restart` (a sub-task is talking with the caller)."""
        if self._timeout is not None:
            self._timeout.reschedule(None)

    def restart(self) -> None:
        """A full period from now (the state's agent is back)."""
        if self._timeout is not None:
            self._timeout.reschedule(asyncio.get_running_loop().time() + self.seconds)

    async def __aenter__(self) -> Deadline:
        self._timeout = asyncio.timeout(self.seconds)
        await self._timeout.__aenter__()
        self._token = _CURRENT.set(self)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None
        assert self._timeout is not None
        await self._timeout.__aexit__(kind, exc, tb)
