"""When a call goes wrong: consecutive failures and loops lead to the error transition.

A *failure* is something the caller would notice as the agent not working: a tool
or transition body that raised or timed out, an LLM request that failed after its
tier's fallbacks, an ``on_enter`` that raised. A refused transition is not a failure:
the flow is working as declared. After ``max_failures`` consecutive failures, or
when the flow loops (more than ``max_transitions`` moves, or the same two states back
and forth ``max_ping_pong`` times, with no caller turn between them: see
:func:`handoff.semantics.loop_reason`), the run takes the flow's error
transition (per state if the State sets ``error_transition``) once, and the new
agent is told why so it can say so to the caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import Finding, FlowDefinitionError

if TYPE_CHECKING:
    from livekit.agents import ErrorEvent, FunctionToolsExecutedEvent

logger = logging.getLogger("handoff")

LLM_ERROR_GRACE = 0.2
"""Seconds an LLM error waits before it counts (see FailureWatch.forgive)."""


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """The limits of a Flow; ``error_transition`` names a declared trigger (or None)."""

    error_transition: str | None = None
    max_failures: int = 2
    max_transitions: int = 20
    """Moves in a row with no caller turn between them before it is a loop."""
    max_ping_pong: int = 3
    """Back-and-forths between the same two states, with no caller turn, before it is a loop."""

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.max_transitions < 1 or self.max_ping_pong < 1:
            raise FlowDefinitionError(None, [Finding(
                "error", "bad-failure-limit", "failure limits must be at least 1",
                "set max_failures, max_transitions and max_ping_pong to 1 or more")])


class FailureWatch:
    """Counts one run's consecutive failures and asks for its error transition when due.

    ``take_error_transition(reason)`` is the run's: it starts the move (and returns its
    task), or returns None when the current state has no error transition. One per run,
    so slotted, and its sets are made by the first LLM error (most calls have none).
    """

    __slots__ = ("_counting", "_forgiven", "_gave_up", "_policy", "_take_error_transition",
                 "consecutive", "failover")

    def __init__(
        self,
        policy: FailurePolicy,
        take_error_transition: Callable[[str], asyncio.Task[Any] | None],
    ) -> None:
        self._policy = policy
        self._take_error_transition = take_error_transition
        self.consecutive = 0
        self.failover: asyncio.Task[Any] | None = None
        self._forgiven: set[int] | None = None
        self._counting: set[asyncio.Future[None]] | None = None  # LLM errors in their grace
        self._gave_up = False

    def note(self, what: str) -> None:
        """Count one failure; ``max_failures`` in a row take the error transition."""
        self.consecutive += 1
        if self.consecutive >= self._policy.max_failures:
            self.start_failover(f"{self.consecutive} failures in a row (last: {what})")

    def after_transition(self, loop: str | None) -> None:
        """A move was committed: the failures in a row end; ``loop`` is why the log now
        shows a loop (:func:`handoff.semantics.loop_reason`), or None."""
        self.consecutive = 0
        if loop is not None:
            self.start_failover(loop)

    def start_failover(self, reason: str) -> None:
        """Take the error transition (once per call) and tell the next agent why."""
        if self.failover is not None or self._gave_up:
            return  # once per call: the error state (or the log line) says it already
        self.failover = self._take_error_transition(reason)
        self._gave_up = self.failover is None

    def on_tools_executed(
        self,
        event: FunctionToolsExecutedEvent,
        transitions: Container[str],
        offered: Container[str] | None = None,
    ) -> None:
        """Count failed ordinary tools (``transitions`` are the current state's triggers,
        which report through refusals; a name not ``offered`` is one the LLM made up, a
        refusal too); a tool that worked ends the series."""
        for output in event.function_call_outputs:
            if output is None or output.name in transitions:
                continue  # transition tools report through refusals
            if offered is not None and output.name not in offered:
                continue  # not a tool of this state: refused, not a failure
            if output.is_error:
                self.note(f"tool {output.name} failed: {output.output}")
            else:
                self.consecutive = 0

    def on_session_error(self, event: ErrorEvent) -> None:
        error = event.error
        kind = getattr(error, "type", None)
        # a pipeline LLM reports once its retries are spent (unrecoverable); a realtime
        # model's failed response is reported recoverable, but the caller got no reply
        # (an unrecoverable realtime error closes the session: LiveKit's own ending)
        if (kind == "llm_error" and not getattr(error, "recoverable", True)) or (
                kind == "realtime_model_error"):
            # counted a moment later, so background requests (history summaries) that
            # share the tier's LLM can claim their own errors first: see forgive()
            cause: BaseException = getattr(error, "error", None) or RuntimeError(str(error))
            loop = asyncio.get_running_loop()
            counted: asyncio.Future[None] = loop.create_future()
            if self._counting is None:
                self._counting = set()
            self._counting.add(counted)
            loop.call_later(LLM_ERROR_GRACE, self._count_llm_error, cause, counted)

    async def settled(self) -> None:
        """Wait until every LLM error reported so far has been counted or forgiven (its
        grace is over); what a test awaits instead of sleeping past the grace."""
        while self._counting:
            await asyncio.shield(next(iter(self._counting)))

    def forgive(self, cause: BaseException) -> None:
        """A background request failed with ``cause``: not a failure the caller noticed."""
        forgiven = self._forgiven if self._forgiven is not None else set()
        self._forgiven = forgiven
        forgiven.add(id(cause))
        for chained in (cause.__cause__, cause.__context__):
            if chained is not None:
                forgiven.add(id(chained))

    def _count_llm_error(self, cause: BaseException, counted: asyncio.Future[None]) -> None:
        if self._counting is not None:
            self._counting.discard(counted)
        try:
            if self._forgiven is not None and id(cause) in self._forgiven:
                self._forgiven.discard(id(cause))
                return
            self.note(f"the language model failed ({cause})")
        finally:
            if not counted.done():
                counted.set_result(None)
