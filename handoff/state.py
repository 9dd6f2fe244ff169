"""State: a specialised agent of a flow, a LiveKit ``Agent`` subclass whose class body
*is* its definition::

    class Triage(State[Call]):
        \"\"\"Finds out what the caller needs.\"\"\"
        tier = "fast"
        history = "last:6"
        instructions = "Find out what the caller needs."

        @transition(to="Billing", when=lambda c: c.verified, refused="verify the account first")
        async def billing_question(self, ctx: RunContext[Call]) -> None:
            \"\"\"Call when the caller has a question about a bill.\"\"\"

Each ``@transition`` (:mod:`handoff.transition`) becomes a LiveKit function tool of the
state's agent; the docstring is what the LLM reads, the typed parameters are what it
must supply. What a State needs from the run that makes it is :class:`StateRun`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from livekit.agents import Agent, ModelSettings, llm
from livekit.agents.llm.chat_context import Instructions
from pydantic_core import to_json

from ._livekit import set_agent_tools, tool_scan_names
from .approval import ApprovalRecord, approval_of
from .context import Context
from .deadline import hook_scope
from .errors import Finding, FlowDefinitionError, FlowError
from .realtime import Model
from .records import Returned, TransitionRecord
from .redaction import Redactor
from .sensitive_args import PiiArguments, pii_arguments, remember_arguments
from .state_tools import ToolScope, collect_free_tools, is_timed, timed_method, with_timeout
from .subtasks import awaited_tasks
from .transition import TransitionDef
from .turn_context import run_before_reply

C = TypeVar("C", bound=Context)
C_co = TypeVar("C_co", bound=Context, covariant=True)
logger = logging.getLogger("handoff")


class StateRun(Protocol[C_co]):
    """What a State's agent needs from the flow run that made it (a :class:`~handoff.run.FlowRun`)."""

    @property
    def context(self) -> C_co:
        """The shared Context of the call."""

    @property
    def state(self) -> str:
        """The run's current state."""

    @property
    def resuming(self) -> bool:
        """True while a checkpointed call is being resumed (its agent does not speak first)."""

    def tools_for(self, state: str) -> list[llm.Tool | llm.Toolset]:
        """The transition tools of ``state``."""

    def shared_tools(self) -> list[llm.Tool | llm.Toolset]:
        """The flow-wide ordinary tools (``Flow(tools=[...])``), offered in every state."""

    def llm_for(self, tier: str) -> Model:
        """The LLM of ``tier`` for this run."""

    def options_for(self, state: type[State[Any]]) -> dict[str, Any]:
        """Extra ``Agent`` keyword arguments for ``state`` (per-state voices)."""

    def note_failure(self, what: str) -> None:
        """Count one failure the caller would notice (a hook that raised)."""

    def note_approval(self, record: ApprovalRecord) -> None:
        """Tell the flow's observers a step of a ``@confirm`` tool's approval."""

    async def go(self, target: str, /, **arguments: Any) -> TransitionRecord:
        """Move the flow from code (see :meth:`handoff.run.FlowRun.go`)."""


class State(Agent, Generic[C]):
    """A specialised agent of a Flow: its prompt, tier, history policy and tools.

    Subclass it and set class attributes; instances are made by the flow run, one
    per visit (and, on a run without a session, one for a transition body that reads
    ``self``: :func:`body_self`), never by user code. ``instructions`` is the prompt; the run adds a
    brief of the shared Context to it on every handoff.
    """

    name: ClassVar[str]
    prompt: str = ""
    """The state's own prompt: the class's ``instructions = "..."``, or the ``instructions=``
    its ``__init__`` passed. Read it here in ``compose_instructions`` (``self.instructions``
    is LiveKit's, the composed text, and does not exist until the agent is made)."""
    tier: ClassVar[str] = "fast"
    history: ClassVar[str] = "full"
    summary_prompt: ClassVar[str | None] = None
    """Instructions for the summary ``history="summary"`` writes when entering this state
    (None: :data:`handoff.history.SUMMARY_INSTRUCTIONS`)."""
    keep_agent: ClassVar[bool] = False
    """Keep one agent for the whole call: a revisit remembers the state's earlier talk
    (LiveKit's multi-agent examples keep their agents in ``userdata``)."""
    speaks_first: ClassVar[bool] = True
    """Whether the agent speaks as soon as it becomes active (it greets / continues)."""
    entry_prompt: ClassVar[str | None] = None
    """Optional instructions for that first reply (e.g. "greet the caller")."""
    tool_timeout: ClassVar[float] = 30.0
    """Seconds a tool or transition body may run before it is stopped and reported."""
    error_transition: ClassVar[str | None] = None
    """This state's error transition; None uses the Flow's."""
    # -- voice and turn taking (handoff.voice; None: the flow's setting) -------------------
    stt_provider: ClassVar[str | None] = None
    stt_model: ClassVar[str | None] = None
    stt_options: ClassVar[dict[str, Any] | None] = None
    tts_provider: ClassVar[str | None] = None
    tts_model: ClassVar[str | None] = None
    tts_voice: ClassVar[str | None] = None
    tts_instructions: ClassVar[str | None] = None
    tts_options: ClassVar[dict[str, Any] | None] = None
    language: ClassVar[str | None] = None
    turn_mode: ClassVar[str | None] = None
    """LiveKit's turn detection for this state: vad, stt, realtime_llm or manual."""
    interruptible: ClassVar[bool | None] = None
    endpointing_min_delay: ClassVar[float | None] = None
    endpointing_max_delay: ClassVar[float | None] = None
    own_tools: ClassVar[tuple[llm.Tool | llm.Toolset, ...]] = ()
    """The free ``function_tool``s of ``tools = [...]`` in the class body (LiveKit's
    ``Agent(tools=[...])``), shared between states as they are, never bound to an agent."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # `instructions = "..."` in a class body would shadow Agent.instructions (a
        # property LiveKit reads); keep the text as `prompt` and restore the property.
        if "instructions" in cls.__dict__:
            text = cls.__dict__["instructions"]
            if not isinstance(text, str):
                raise FlowDefinitionError(None, [Finding(
                    "error", "bad-instructions", f"{cls.__name__}.instructions must be a string",
                    "write the prompt as a string", state=cls.__name__)])
            cls.prompt = text
            delattr(cls, "instructions")
        if "name" not in cls.__dict__:
            cls.name = cls.__name__
        collect_free_tools(cls)
        # its method tools run under the state's timeout (see _tool_scope), wrapped once here
        for attr, value in list(cls.__dict__.items()):
            if isinstance(value, llm.FunctionTool) and not is_timed(value):
                setattr(cls, attr, timed_method(value, _tool_scope))
        # a raising on_enter/on_exit must not leave the call silent or the handoff half-done:
        # the move is complete (LiveKit switched agents), the failure is counted and reported
        for hook in ("on_enter", "on_exit"):
            if hook in cls.__dict__ and not getattr(cls.__dict__[hook], "_handoff_guarded", False):
                setattr(cls, hook, _guarded_hook(cls.__dict__[hook], hook))

    @classmethod
    def state_name(cls) -> str:
        return cls.name

    @classmethod
    def one_line(cls) -> str:
        """The first line of the class docstring (shown on diagrams)."""
        doc = cls.__dict__.get("__doc__") or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    @classmethod
    def declared_transitions(cls) -> list[TransitionDef]:
        """Every @transition of this class and its bases (a subclass may override one)."""
        found: dict[str, TransitionDef] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                if isinstance(value, TransitionDef):
                    found[attr] = value
        return list(found.values())

    @classmethod
    def tool_names(cls) -> list[str]:
        """Names of the ordinary (non-transition) function tools of this state: its
        methods and its ``tools = [...]`` (not the flow-wide ones)."""
        names = [t.info.name for t in cls.own_tools if isinstance(t, llm.FunctionTool | llm.RawFunctionTool)]
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                if isinstance(value, llm.FunctionTool | llm.RawFunctionTool):
                    names.append(value.info.name)
        return sorted(set(names))

    @classmethod
    def confirmed_tools(cls) -> list[str]:
        """Names of the ordinary tools of this state that ask the caller first (``@confirm``)."""
        tools = [*cls.own_tools, *(v for klass in cls.__mro__ for v in vars(klass).values())]
        return sorted({t.info.name for t in tools
                       if isinstance(t, llm.FunctionTool | llm.RawFunctionTool)
                       and approval_of(t) is not None})

    @classmethod
    def awaited_tasks(cls) -> tuple[str, ...]:
        """The LiveKit ``AgentTask`` classes (``GetEmailTask``, ``TaskGroup``…) this state's
        own code refers to: its methods, transition bodies and ``tools``, read from the code
        (see :mod:`handoff.subtasks`). Diagrams list them in the state's box."""
        functions: list[Any] = list(cls.own_tools)
        for klass in cls.__mro__:
            if klass is State:
                break
            functions.extend(vars(klass).values())
        return awaited_tasks(functions)

    @classmethod
    def init_problem(cls) -> str | None:
        """Why the flow could not make this state's agent with its ``__init__``, or None."""
        init = cls.__init__
        if init is State.__init__:
            return None
        try:
            params = list(inspect.signature(init).parameters.values())[1:]
        except (TypeError, ValueError):
            return None
        required = [p.name for p in params if p.default is p.empty
                    and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        return (f"{cls.__name__}.__init__ requires {', '.join(required)}; the flow makes the "
                "agent with no arguments") if required else None

    def __init__(
        self,
        run: StateRun[C] | None = None,
        /,
        *,
        chat_ctx: llm.ChatContext | None = None,
        note: str | None = None,
        instructions: str | None = None,
        tools: Sequence[llm.Tool | llm.Toolset] = (),
        **agent_options: Any,
    ) -> None:
        """Made by the flow run, one per visit. A subclass may write its ``__init__`` the way
        LiveKit's docs write an Agent's, with no argument of its own::

            def __init__(self) -> None:
                super().__init__(instructions="Greet the caller.", tools=[lookup_order])

        ``instructions`` replaces the class's prompt, ``tools`` adds free tools, and any
        other ``Agent`` keyword (``llm=``, ``tts=``, ``allow_interruptions=``…) overrides
        what the tier and voice settings give.
        """
        made, providers = _MAKING.get(), True
        if run is None:
            if made is None:
                raise FlowError(f"{type(self).__name__} is made by its flow run (run.make_agent), "
                                "not by user code")
            run, chat_ctx, note, providers = made
        self._run = run
        self.added_tools: tuple[llm.Tool | llm.Toolset, ...] = tuple(tools)
        """The tools this agent's own ``__init__`` added (``tools=``): what it offers
        besides the flow's declaration (:func:`handoff.semantics.offer`)."""
        if instructions is not None:
            self.prompt = instructions
        transition_tools = run.tools_for(self.name)
        options: dict[str, Any] = (  # none resolved for a body's self on a pure run
            {"llm": run.llm_for(self.tier), **run.options_for(type(self))} if providers
            else {"llm": None})
        options.update(agent_options)
        instructions_text = self.compose_instructions(run.context, note)
        self.__dict__["_scanning"] = True  # LiveKit's scan for method tools reads dir(self)
        try:
            super().__init__(
                instructions=instructions_text,
                id=self.name,
                chat_ctx=chat_ctx,
                tools=[*transition_tools, *self.own_tools, *tools, *run.shared_tools()],
                **options,
            )
        finally:
            del self.__dict__["_scanning"]
        # ordinary tools get the state's timeout (transition bodies get it in the run)
        self._pii = pii = pii_arguments(type(self), self.tools)  # shared per class and tools
        set_agent_tools(self, [
            t if t in transition_tools or not isinstance(t, llm.FunctionTool) or is_timed(t)
            else with_timeout(t, ToolScope(self.tool_timeout, run.context, pii.get(t.id),
                                           run.note_approval))
            for t in self.tools
        ])

    def __dir__(self) -> Iterable[str]:
        """Every attribute name, as usual; while ``Agent.__init__`` looks for the agent's
        method tools, only the names that can hold one (:func:`handoff._livekit.tool_scan_names`:
        the same tools, found without reading ~100 names that cannot be one)."""
        if self.__dict__.get("_scanning"):
            return [*tool_scan_names(type(self)), *self.__dict__]
        return super().__dir__()

    @property
    def run(self) -> StateRun[C]:
        """The flow run this agent belongs to."""
        return self._run

    @property
    def instructions(self) -> str | Instructions:
        """LiveKit's instructions of this agent: what ``compose_instructions`` made of the
        prompt, the brief and the note. Before the agent is made (inside
        ``compose_instructions``) there are none yet: the class's prompt is ``self.prompt``."""
        try:
            return super().instructions
        except AttributeError:
            raise AttributeError(
                f"{type(self).__name__}.instructions is not set until the agent is made; "
                "inside compose_instructions() the state's prompt is self.prompt") from None

    @property
    def context(self) -> C:
        """The shared Context of the call (same object as ``session.userdata``)."""
        return self._run.context

    def compose_instructions(self, context: C, note: str | None = None) -> str:
        """The prompt, the brief of what the call has established, and the handoff note.

        Override it to shape the instructions from the Context; the class's prompt is
        ``self.prompt`` (``self.instructions`` does not exist yet: this makes it)::

            def compose_instructions(self, context: Call, note: str | None = None) -> str:
                return f"{self.prompt} The caller is {context.caller_name}."

        It runs when the agent is made (every handoff into the state) and when a kept agent
        (``keep_agent``) or a returning side trip updates it; for what must be fresh on
        every turn, see :meth:`before_reply`. The brief leaves sensitive fields out, and a
        plain field quoting a value one of them held (an LLM copied the PIN into ``topic``)
        is scrubbed of it."""
        parts = [self.prompt]
        if brief := Redactor(context).text(context.brief()):
            parts.append(f"What this call has established so far:\n{brief}")
        if note:
            parts.append(f"Note from the previous agent: {note}")
        return "\n\n".join(parts)

    async def on_return(self, returned: Returned[Any]) -> str | None:
        """A side trip this state started (``returns=True``) came back with ``returned.value``
        (LiveKit: the value ``await SomeTask()`` gives the tool that awaited it).

        Override it to act on the result: it runs on this state's agent just before it is
        active again, as part of the move (what it writes to the Context is rolled back if
        the handoff does not happen, and the brief the agent reads includes it). What it
        returns is the note the agent finds in its instructions; by default, a line with
        the result as JSON (no note when the side trip returned no value)."""
        if returned.value is None:
            return None
        data = to_json(returned.value, fallback=str).decode()
        return f"{returned.state} finished ({returned.trigger}) and returned: {data}"

    async def before_reply(self, chat_ctx: llm.ChatContext) -> str | None:
        """Runs before every request this state's agent makes to its model, in voice and
        text mode alike: a reply to the caller's turn, a reply after tools, an opening.

        Override it to fetch what must be fresh each turn (the caller's bookings, the
        time): write it to the Context, or return text, which that request (and only that
        one) gets as a system message right after the instructions. ``chat_ctx`` is a copy
        of the request's conversation (the caller's last words are in it). It has the
        state's ``tool_timeout``; one that raises or times out counts as a failure, and the
        model answers without its text. Sensitive values are scrubbed from the text."""
        return None

    def llm_node(
        self, chat_ctx: llm.ChatContext, tools: list[llm.Tool], model_settings: ModelSettings
    ) -> Any:
        """LiveKit's ``llm_node``, after :meth:`before_reply` when the state has one, and
        learning the values of pii arguments from the model's calls as they arrive (see
        :mod:`handoff.sensitive_args`). A State that overrides ``llm_node`` calls
        ``super().llm_node(...)`` to keep both."""
        hooked = type(self).before_reply is not State.before_reply
        pii = self._pii
        if not hooked and not pii:
            return Agent.default.llm_node(self, chat_ctx, tools, model_settings)
        return self._reply(chat_ctx, tools, model_settings, hooked, pii)

    async def _reply(self, chat_ctx: llm.ChatContext, tools: list[llm.Tool],
                     model_settings: ModelSettings, hooked: bool,
                     pii: PiiArguments) -> AsyncIterator[Any]:
        if hooked:
            await run_before_reply(self, chat_ctx, hook=self.before_reply,
                                   timeout=self.tool_timeout, scrub=Redactor(self.context).text,
                                   on_error=self._run.note_failure)
        async with contextlib.aclosing(
                Agent.default.llm_node(self, chat_ctx, tools, model_settings)) as stream:
            async for chunk in stream:
                if pii and isinstance(chunk, llm.ChatChunk) and chunk.delta is not None:
                    for fnc in chunk.delta.tool_calls:  # before LiveKit runs (and logs) it
                        remember_arguments(self.context, pii.get(fnc.name, frozenset()),
                                           fnc.arguments)
                yield chunk

    _pii: PiiArguments = {}
    """The pii parameters of the agent's tools, by tool name (set when it is made)."""

    def learn_pii(self, item: llm.ChatItem) -> None:
        """Remember the values of the pii arguments of the model's call ``item``. A
        realtime model's calls reach no ``llm_node``: the run calls this as LiveKit
        records each one, before it runs (and logs) it."""
        if item.type == "function_call" and self._pii:
            remember_arguments(self.context, self._pii.get(item.name, frozenset()),
                               item.arguments)

    bridge: str | None = None
    """The bridge line (the transition's ``say=``) this agent says first on entering; set by
    the run for the visit that made it, cleared once said."""

    def say_bridge(self) -> None:
        """Say the pending bridge line now, once: it is queued before the agent's first reply,
        whose LLM request runs while the line plays."""
        text = self.bridge
        if text:  # assigned only when set: an agent's dict grows on a first assignment
            self.bridge = None
            self.session.say(text)

    async def on_enter(self) -> None:
        """Speak first when the state becomes active (unless ``speaks_first`` is False)."""
        self.say_bridge()
        if self.speaks_first and not self._run.resuming:
            if self.entry_prompt:
                self.session.generate_reply(instructions=self.entry_prompt)
            else:
                self.session.generate_reply()


def _tool_scope(agent: State[Any], name: str) -> ToolScope:
    """What a call of the agent's method tool ``name`` needs: the state's timeout, the
    call's Context, the tool's pii parameters, the run's approval observer."""
    run = agent._run
    return ToolScope(agent.tool_timeout, run.context, agent._pii.get(name), run.note_approval)


_MAKING: ContextVar[tuple[Any, llm.ChatContext | None, str | None, bool] | None] = ContextVar(
    "handoff_making_agent", default=None)


@contextmanager
def making(run: StateRun[Any], chat_ctx: llm.ChatContext | None, note: str | None, *,
           providers: bool = True) -> Iterator[None]:
    """While the run makes an agent with ``cls()``: what ``State.__init__`` is made from
    (``providers=False``: no LLM or voice is resolved, see :func:`body_self`)."""
    token = _MAKING.set((run, chat_ctx, note, providers))
    try:
        yield
    finally:
        _MAKING.reset(token)


def body_self(run: StateRun[Any], cls: type[State[Any]]) -> State[Any]:
    """The ``self`` of a transition body on a run without a session (``flow.new_run()``:
    exploration, the pure machine, path search): a real ``cls`` agent of ``run``, with
    its ``context``, ``run``, ``name`` and methods as in a session, but made without
    resolving a provider (LiveKit's ``Agent(llm=None)``), so no key is needed. It is
    never handed to LiveKit, and not kept (``keep_agent``) past the body."""
    with making(run, None, None, providers=False):
        return cls()


def _guarded_hook(hook: Callable[[Any], Awaitable[None]], name: str) -> Any:
    @functools.wraps(hook)
    async def guarded(self: State[Any]) -> None:
        if name == "on_enter":
            self.say_bridge()  # before the user's hook, which may take its time
        try:
            with hook_scope():  # run.go() from a hook returns without waiting for the handoff
                await hook(self)
        except Exception as exc:
            logger.exception("%s.%s raised", type(self).__name__, name)
            self._run.note_failure(f"{type(self).__name__}.{name} raised {exc!r}")
            if name == "on_enter" and self.speaks_first:
                self.session.generate_reply(instructions=(
                    "Something went wrong while preparing this step. Apologise in one short "
                    "sentence and ask how you can help."))

    guarded._handoff_guarded = True  # type: ignore[attr-defined]
    return guarded
