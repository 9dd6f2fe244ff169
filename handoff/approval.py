"""Approval before actions: the caller confirms before a tool or a transition body runs.

::

    @transition(to="Cancelled", confirm="Shall I cancel ticket {ticket}?")
    async def cancel(self, ctx: RunContext[Call], ticket: str) -> None: ...

    @confirm("Shall I refund {amount} euros?")
    @function_tool
    async def refund(self, ctx: RunContext[Call], amount: int) -> str: ...

When the model calls it, the agent asks the question (its ``{placeholders}`` are the call's
arguments) in its own voice, through a small LiveKit ``AgentTask`` (:class:`AskApproval`)
that talks with the state's model: the caller's yes lets the action run, once; a no (with
the caller's reason), silence for ``timeout`` seconds, or the call ending first denies
it, and the model reads why as the tool's error. Nothing runs before the answer, so an
interruption or the session closing mid-question leaves nothing half-applied. Moves asked
for by code (``run.go()``) are not asked about: code decides for itself.
"""

from __future__ import annotations

import asyncio
import inspect
import string
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from livekit.agents import AgentTask, function_tool, llm

from .errors import Finding, FlowDefinitionError

T = TypeVar("T")

DEFAULT_TIMEOUT = 20.0
"""Seconds the caller may stay silent after the question before it counts as a no."""

Outcome = Literal["asked", "granted", "denied"]


@dataclass(frozen=True, slots=True)
class Approval:
    """A declared confirmation: the question (``{name}`` is the call's argument ``name``)
    and how long silence may last before it counts as a no."""

    question: str
    timeout: float = DEFAULT_TIMEOUT

    def checked(self, action: str, parameters: Sequence[str]) -> Approval:
        """This approval, or FlowDefinitionError when the question names an argument the
        action does not take or the timeout is not positive (a bad flow fails when built)."""
        try:
            names = {f.split(".")[0].split("[")[0]
                     for _, f, _, _ in string.Formatter().parse(self.question) if f}
        except ValueError as exc:
            names, bad = set(), f"its question cannot be formatted ({exc})"
        else:
            unknown = sorted(names - set(parameters))
            bad = (f"its question names {', '.join(unknown)}, which {action} does not take"
                   if unknown else "its timeout must be more than 0 s"
                   if self.timeout <= 0 else "its question is empty"
                   if not self.question.strip() else "")
        if bad:
            raise FlowDefinitionError(None, [Finding(
                "error", "bad-confirm", f"confirm= of {action}: {bad}",
                "write the question with the action's parameters in braces: "
                f"confirm=\"Shall I ...{{{parameters[0] if parameters else 'name'}}}?\"",
                trigger=action)])
        return self

    def question_for(self, arguments: Mapping[str, Any]) -> str:
        """The question with the call's arguments in it."""
        return self.question.format_map(dict(arguments))


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """One step of an approval, as observers receive it (``on_approval(run, record)``):
    ``asked``, then ``granted`` or ``denied`` with the reason."""

    action: str
    question: str
    outcome: Outcome
    reason: str | None
    at: float


def confirm(question: str, *, timeout: float = DEFAULT_TIMEOUT) -> Callable[[T], T]:
    """Require the caller's confirmation before a ``@function_tool`` runs (stack it above
    or below ``@function_tool``). ``{name}`` in ``question`` is the call's argument
    ``name``; ``timeout`` is how long silence may last before it counts as a no."""

    def decorate(tool: T) -> T:
        func = _function_of(tool)
        approval = Approval(question, timeout).checked(
            getattr(func, "__name__", "tool"), _parameters(func))
        func.__handoff_approval__ = approval
        return tool

    return decorate


def approval_of(tool: Any) -> Approval | None:
    """The approval a ``@confirm`` tool declares, if any."""
    return getattr(_function_of(tool), "__handoff_approval__", None)


def _function_of(tool: Any) -> Any:
    if isinstance(tool, llm.FunctionTool | llm.RawFunctionTool):
        return getattr(tool, "__wrapped__", tool)  # functools.update_wrapper sets it
    return tool


def _parameters(func: Any) -> list[str]:
    """The parameters the model fills in (not ``self``, not the ``RunContext``)."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params
            if p.name != "self" and "RunContext" not in str(p.annotation)]


class Answer:
    """The caller's answer: granted, or denied with a reason."""

    __slots__ = ("granted", "reason")

    def __init__(self, granted: bool, reason: str | None = None) -> None:
        self.granted = granted
        self.reason = reason


class AskApproval(AgentTask[Answer]):
    """Asks the caller one yes/no question and completes with their :class:`Answer`.

    It says the question itself (``session.say``), so the caller hears exactly the declared
    words; the state's model then reads the answer and calls ``approve`` or ``deny``. An
    unrelated question is answered and the question asked again. Silence for ``timeout``
    seconds after the question (or after the caller's last line) is a no. ``on_asked`` is
    called once the question is said (several questions of one turn are asked in turn)."""

    def __init__(self, question: str, timeout: float = DEFAULT_TIMEOUT,
                 on_asked: Callable[[], None] | None = None) -> None:
        super().__init__(instructions=(
            f'You have just asked the caller: "{question}". If they clearly agree, call '
            "approve. If they refuse, hesitate or change their mind, call deny with their "
            "reason in their own words. If they ask something else, answer in one short "
            "sentence and ask the question again. Never decide for them."))
        self.question = question
        self.timeout = timeout
        self._on_asked = on_asked
        self._timer: asyncio.TimerHandle | None = None

    @property
    def id(self) -> str:
        return "approval"

    async def on_enter(self) -> None:
        self.session.on("conversation_item_added", self._heard)
        self.session.say(self.question)
        self._restart_timer()
        if self._on_asked is not None:
            self._on_asked()

    async def on_exit(self) -> None:
        self._stop()

    def _heard(self, event: Any) -> None:
        if getattr(event.item, "role", None) == "user":
            self._restart_timer()  # the caller spoke: a new period of silence starts

    def _restart_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self.done():
            self._timer = asyncio.get_running_loop().call_later(self.timeout, self._silence)

    def _silence(self) -> None:
        self._finish(Answer(False, "the caller did not answer"))

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.session.off("conversation_item_added", self._heard)

    def _finish(self, answer: Answer) -> None:
        if not self.done():
            self._stop()
            self.complete(answer)

    @function_tool
    async def approve(self) -> None:
        """Call when the caller clearly said yes."""
        self._finish(Answer(True))

    @function_tool
    async def deny(self, reason: str) -> None:
        """Call when the caller said no or does not want it now.

        Args:
            reason: why, in the caller's words ("no reason given" if they gave none).
        """
        self._finish(Answer(False, reason))


async def ask(approval: Approval, action: str, arguments: Mapping[str, Any],
              tell: Callable[[ApprovalRecord], None]) -> str | None:
    """Ask the caller; None when they said yes, else why not (for the model). ``tell``
    receives the ``asked`` record (once the question is said), then the ``granted`` or
    ``denied`` one. A cancelled
    caller (an interruption that ends the tool) re-raises after the denial is told."""
    question = approval.question_for(arguments)
    reason: str | None = "the call ended before the caller answered"
    try:
        answer = await AskApproval(question, approval.timeout, lambda: tell(
            ApprovalRecord(action, question, "asked", None, time.time())))
        reason = None if answer.granted else (answer.reason or "no reason given")
    except Exception:  # LiveKit ends a task of a closing session with an error
        pass
    finally:
        tell(ApprovalRecord(action, question, "denied" if reason else "granted", reason,
                            time.time()))
    return reason


def denial(action: str, reason: str) -> str:
    """What the model reads when the caller did not approve ``action``."""
    return (f"the caller did not approve {action} ({reason}); it was not done. Do not call "
            "it again unless the caller asks for it again.")
