"""The LiveKit ``AgentTask``s a run's agent is awaiting, and the code that awaited them.

A State awaits LiveKit's tasks (``await GetEmailTask()`` in a tool, a ``TaskGroup``)
without the flow moving: the task talks with the caller, then its result goes back to
the awaiting code. :class:`AwaitedTasks` is a run's record of them, fed by the session's
``agent_handoff`` items: a task that becomes active (:meth:`AwaitedTasks.start`), a
task group that resumes (:meth:`AwaitedTasks.resumed`), the state's agent that resumes
(:meth:`AwaitedTasks.end`). While a task talks, the deadline of the tool awaiting it
stops (the caller's answer may take long); a task talks with its parent's models unless
it names its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

from livekit.agents import Agent, AgentTask, llm
from livekit.agents.utils import is_given

from .deadline import Deadline

_NO_NAMES: frozenset[str] = frozenset()
"""Shared: Python makes a new empty frozenset (216 B) at every ``frozenset()``."""


class AwaitedTasks:
    """The tasks being awaited, outermost first, and who awaits each."""

    __slots__ = ("_callers", "_tasks", "tool_names")

    def __init__(self) -> None:
        # tuples, so a run awaiting no task (most) holds the one shared empty tuple
        self._tasks: tuple[AgentTask[Any], ...] = ()
        self._callers: tuple[tuple[AgentTask[Any], asyncio.Task[Any]], ...] = ()
        self.tool_names: frozenset[str] = _NO_NAMES
        """The tools of the latest tasks: the one that completes a task reports after the
        state's agent resumed, and is not a made-up name of the state's."""

    def __contains__(self, agent: object) -> bool:
        return agent in self._tasks

    def active(self, current: object) -> tuple[AgentTask[Any], ...]:
        """The tasks still talking (``current`` is the session's active agent: a task that
        completed is left out once LiveKit has moved on from it)."""
        return tuple(t for t in self._tasks if not t.done() or t is current)

    def callers(self) -> tuple[asyncio.Task[Any], ...]:
        """The code still finishing after a task it awaited completed (see ``run.task_callers``)."""
        self._callers = tuple((t, c) for t, c in self._callers if not c.done())
        awaiting = {c for t, c in self._callers if not t.done()}  # e.g. a TaskGroup's next task
        return tuple(dict.fromkeys(c for t, c in self._callers if t.done() and c not in awaiting))

    def start(self, task: AgentTask[Any], agent: Agent | None) -> None:
        """``task``, awaited by ``agent`` (or by the innermost task), became active."""
        parent: Agent | None = self._tasks[-1] if self._tasks else agent
        self.tool_names = (self.tool_names if self._tasks else _NO_NAMES) | frozenset(
            t.id for t in task.tools if isinstance(t, llm.FunctionTool | llm.RawFunctionTool))
        self._tasks = (*self._tasks, task)
        caller = asyncio.current_task()  # LiveKit starts the task from the code awaiting it
        self._callers = tuple((t, c) for t, c in self._callers if not c.done())
        if caller is not None:
            self._callers = (*self._callers, (task, caller))
        if parent is not None:
            inherited = {name: getattr(parent, name) for name in ("llm", "tts", "stt")
                         if not is_given(getattr(task, name)) and is_given(getattr(parent, name))}
            if inherited:
                task.update_options(**inherited)
        if (deadline := Deadline.current()) is not None:
            deadline.pause()

    def resumed(self, task: AgentTask[Any]) -> None:
        """``task`` (a task group) is active again: the tasks it awaited are done."""
        self._tasks = self._tasks[:self._tasks.index(task) + 1]

    def end(self) -> None:
        """The state's agent resumed: every task it awaited is done."""
        if self._tasks:
            self._tasks = ()
            if (deadline := Deadline.current()) is not None:
                deadline.restart()

    def clear(self, *, callers: bool = False) -> None:
        """Forget the tasks (a move replaced them), and their callers too when the call ended."""
        self._tasks = ()
        if callers:
            self._callers = ()
