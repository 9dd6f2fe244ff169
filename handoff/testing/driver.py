"""FlowDriver: a real text-mode AgentSession for a flow, whose LLM you steer turn by turn.

The model side is a scripted model with a policy: the first request after each caller
line gets the reply you planned for that turn (a tool call, several, text); every other
request (openings, answers to tool outputs) gets a short neutral text. So tests say
*what the LLM decides*, and the real session decides what happens::

    async with FlowDriver(flow) as d:
        await d.turn(call("caller_identified", name="Ann", topic="bill"))
        assert d.run.state == "Triage"

Each tier is played by the scripted counterpart of its kind: a pipeline tier by a
:class:`~handoff.testing.ScriptedLLM`, a realtime tier (``kind = "realtime"``) by a
:class:`~handoff.testing.ScriptedRealtimeModel`, so a flow mixing both is driven through
LiveKit's pipeline and realtime paths as it would run. ``model=`` puts one scripted model
on every state instead (``FlowDriver(flow, model=ScriptedRealtimeModel)``: the whole flow
on a speech-to-speech model).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeAlias, TypeVar

from livekit.agents.voice.run_result import RunResult

from .._livekit import pending_handoff_tasks, session_is_closing
from ..context import Context
from ..flow import Flow
from ..realtime import Model
from ..run import FlowRun
from .realtime import ScriptedRealtimeModel
from .scripted import Policy, Reply, ReplyLike, ScriptedLLM, Turn, as_reply

if TYPE_CHECKING:
    from ..events.recording import Recording

C = TypeVar("C", bound=Context)

InterruptAt = Literal["thinking", "handing_over"]
ScriptedModel: TypeAlias = ScriptedLLM | ScriptedRealtimeModel
ModelFactory: TypeAlias = Callable[[Iterable[ReplyLike] | Policy], ScriptedModel]
"""Makes a scripted model from a script or a policy (a driver passes its own policy):
``ScriptedLLM``, ``ScriptedRealtimeModel`` or a ``functools.partial`` of either
(``partial(ScriptedRealtimeModel, mutable=False)``)."""
BY_KIND: dict[str, ModelFactory] = {"llm": ScriptedLLM, "realtime": ScriptedRealtimeModel}
"""The scripted counterpart of each kind of tier."""
HANG_AFTER = 30.0
"""Seconds after which a turn that has not finished is reported as hung (never a timing
assertion: a scripted turn takes milliseconds; this only turns a deadlock into a failure)."""


class FlowDriver(Generic[C]):
    """A started session of ``flow`` with a steerable scripted model (use ``async with``).

    ``model``: one factory for every state (``ScriptedLLM``, ``ScriptedRealtimeModel``);
    by default each tier gets the scripted model of its kind (:data:`BY_KIND`).
    """

    def __init__(self, flow: Flow[C], *, context: C | None = None, filler: str = "Noted.",
                 recording: Recording | None = None, model: ModelFactory | None = None) -> None:
        self.flow = flow
        self.recording = recording
        """Records the driven call for ``handoff inspect`` (its id in ``call_id``)."""
        self.call_id: str | None = None
        self.filler = filler
        self.models: dict[str, ScriptedModel] = (
            {"*": model(self._policy)} if model is not None else _by_kind(flow, self._policy))
        """The scripted models, by tier (``"*"``: every state's, when ``model=`` is given).
        They share the driver's policy: whichever state is active answers the plan."""
        self._context = context
        self._plan: Reply | None = None
        self._asked = asyncio.Event()
        self._stack: contextlib.AsyncExitStack | None = None
        self._run: FlowRun[C] | None = None
        self._ended = asyncio.Event()

    @property
    def llm(self) -> ScriptedModel:
        """The scripted model of the initial state (the only one, with ``model=``)."""
        return self.models.get("*") or self.models[self.flow.states[self.flow.initial].tier]

    def _session_llm(self) -> Model | dict[str, Model]:
        distinct = {id(m): m for m in self.models.values()}
        if len(distinct) == 1:  # one model for every state: LiveKit's helpers (TaskGroup's
            return next(iter(distinct.values()))  # summary) find it as session.llm
        return dict(self.models)

    @property
    def ended(self) -> bool:
        """True once the session closed (the flow hung up, or a tool ended the call)."""
        return self._ended.is_set()

    @property
    def run(self) -> FlowRun[C]:
        if self._run is None:
            raise RuntimeError("the FlowDriver is not started: use `async with FlowDriver(...)`")
        return self._run

    async def __aenter__(self) -> FlowDriver[C]:
        self._stack = contextlib.AsyncExitStack()
        self._run = await self._stack.enter_async_context(
            self.flow.session(context=self._context, llm=self._session_llm()))
        self._run.session.on("close", lambda _: self._ended.set())
        if self.recording is not None:
            self.call_id = self.recording.track(self._run, "driver")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        if self._run is not None:
            self._run.close()

    def _policy(self, turn: Turn) -> ReplyLike:
        if self._plan is not None and not turn.answering_tool:
            plan, self._plan = self._plan, None
            self._asked.set()
            return plan
        return f"{self.filler}"

    async def turn(self, reply: ReplyLike, *, user: str = "(caller speaks)") -> RunResult[Any]:
        """One caller line; the LLM's first answer to it is ``reply``. Waits for the turn."""
        session = self.run.session
        assert session is not None
        self._plan = as_reply(reply)
        try:
            result: RunResult[Any] = await _no_hang(session.run(user_input=user),
                                                    f"the turn answered by {reply!r}")
        finally:
            self._plan = None
        await self.settle()
        return result

    async def interrupted_turn(
        self, reply: ReplyLike, *, at: InterruptAt = "handing_over", user: str = "(caller speaks)",
        interrupt_user: str = "(caller talks over the agent)",
    ) -> None:
        """A turn the caller interrupts: while the LLM thinks, or while the handoff is under way.

        Then the caller says ``interrupt_user`` and the session settles (the LLM replies
        with filler). Whatever happened, the run must be consistent afterwards.
        """
        session = self.run.session
        assert session is not None
        planned = as_reply(reply)
        if at == "thinking" and not planned.delay:
            planned = Reply(planned.text, planned.calls, delay=0.01, error=planned.error)
        self._plan = planned
        self._asked.clear()
        result: RunResult[Any] = session.run(user_input=user)
        with contextlib.suppress(Exception):
            await self._wait_for(at, result)
            fut = session.interrupt(force=True)
            await fut
        with contextlib.suppress(Exception):
            await result
        self._plan = None
        await self.settle()

    async def _wait_for(self, at: InterruptAt, result: RunResult[Any]) -> None:
        await asyncio.wait_for(self._asked.wait(), timeout=5)
        if at == "handing_over":
            for _ in range(200):  # until the transition is pending or the turn is over
                if self.run.in_transition or result.done():
                    return
                await asyncio.sleep(0)

    async def settle(self) -> None:
        """Wait until the session is between turns (see :func:`settle`)."""
        await settle(self.run, self._ended)


async def settle(run: FlowRun[Any], ended: asyncio.Event | None = None) -> None:
    """Wait until ``run``'s session is between turns: no handoff, on_enter or speech in
    flight, and no code that awaited a LiveKit task still finishing once that task is
    done (``run.task_callers``: a caller line sent before it has resumed its agent
    finds the agent paused, LiveKit refuses the turn, and the task's result never
    arrives).

    LiveKit has no public "handoff finished" signal, so this also waits for the
    session's agent-update task and the new activity's on_enter task when present.
    A session that is closing (the call hung up) is waited for until it has closed
    (``ended``: an event set on the session's close).
    """
    session = run.session
    assert session is not None
    for _ in range(100):
        if (ended is not None and ended.is_set()) or run.closed:
            return
        try:
            await session.wait_for_idle()
        except Exception:
            if session_is_closing(session):  # the call is over: wait until it has closed
                if ended is not None:
                    await _no_hang(ended.wait(), "the session's close")
                return
        pending = pending_handoff_tasks(session)
        for task in pending:
            with contextlib.suppress(BaseException):
                await asyncio.shield(task)
        # the code that awaited a completed task: until it returns, or the session's agent
        # changes (it started another task, which waits for the caller)
        finishing = list(run.task_callers)
        if finishing:
            await _no_hang(_first_of(session, finishing), "code finishing after a LiveKit task")
        # a move whose body awaits a task talking with the caller is between turns too
        moving = run.in_transition and not run.tasks
        if not pending and not finishing and not moving and session.current_speech is None:
            return
        await asyncio.sleep(0)
    raise RuntimeError("the session did not settle between turns")


async def _first_of(session: Any, callers: list[asyncio.Task[Any]]) -> None:
    """Until one of ``callers`` returns or the session's active agent changes."""
    handoff: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def seen(event: Any) -> None:
        if event.item.type == "agent_handoff" and not handoff.done():
            handoff.set_result(None)

    session.on("conversation_item_added", seen)
    try:
        await asyncio.wait([*callers, handoff], return_when=asyncio.FIRST_COMPLETED)
    finally:
        session.off("conversation_item_added", seen)


async def _no_hang(awaitable: Any, what: str) -> Any:
    try:
        return await asyncio.wait_for(asyncio.ensure_future(awaitable), HANG_AFTER)
    except TimeoutError:
        raise AssertionError(f"{what} did not finish: the session is stuck") from None


def scripted_for(flow: Flow[Any], tier: str) -> ModelFactory:
    """The scripted model of ``tier``'s kind (a tier the table lacks is a pipeline tier)."""
    return BY_KIND[flow.tiers.kind_of(tier) if tier in flow.tiers else "llm"]


def _by_kind(flow: Flow[Any], policy: Policy) -> dict[str, ScriptedModel]:
    """One scripted model per kind of tier the flow's states use, keyed by tier."""
    made: dict[ModelFactory, ScriptedModel] = {}
    models: dict[str, ScriptedModel] = {}
    for tier in sorted({cls.tier for cls in flow.states.values()}):
        factory = scripted_for(flow, tier)
        if factory not in made:
            made[factory] = factory(policy)
        models[tier] = made[factory]
    return models


@contextlib.asynccontextmanager
async def flow_driver(flow: Flow[C], *, context: C | None = None,
                      model: ModelFactory | None = None) -> AsyncIterator[FlowDriver[C]]:
    """``async with flow_driver(flow) as d`` — the same as ``async with FlowDriver(flow)``."""
    async with FlowDriver(flow, context=context, model=model) as driver:
        yield driver
