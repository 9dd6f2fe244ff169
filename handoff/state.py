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

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from livekit.agents import Agent, ToolError, llm

from ._livekit import set_agent_tools
from .context import Context
from .deadline import Deadline, hook_scope
from .errors import Finding, FlowDefinitionError
from .records import TransitionRecord
from .redaction import Redactor
from .transition import TransitionDef

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

    def llm_for(self, tier: str) -> llm.LLM:
        """The LLM of ``tier`` for this run."""

    def options_for(self, state: type[State[Any]]) -> dict[str, Any]:
        """Extra ``Agent`` keyword arguments for ``state`` (per-state voices)."""

    def note_failure(self, what: str) -> None:
        """Count one failure the caller would notice (a hook that raised)."""

    async def go(self, target: str, /, **arguments: Any) -> TransitionRecord:
        """Move the flow from code (see :meth:`handoff.run.FlowRun.go`)."""


class State(Agent, Generic[C]):
    """A specialised agent of a Flow: its prompt, tier, history policy and tools.

    Subclass it and set class attributes; instances are made by the flow run, one
    per visit, never by user code. ``instructions`` is the prompt; the run adds a
    brief of the shared Context to it on every handoff.
    """

    name: ClassVar[str]
    prompt: ClassVar[str] = ""
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
        """Names of the ordinary (non-transition) function tools of this state."""
        names = []
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                if isinstance(value, llm.FunctionTool | llm.RawFunctionTool):
                    names.append(value.info.name)
        return sorted(set(names))

    def __init__(
        self,
        run: StateRun[C],
        *,
        chat_ctx: llm.ChatContext | None = None,
        note: str | None = None,
    ) -> None:
        self._run = run
        transition_tools = run.tools_for(self.name)
        super().__init__(
            instructions=self.compose_instructions(run.context, note),
            id=self.name,
            chat_ctx=chat_ctx,
            tools=transition_tools,
            llm=run.llm_for(self.tier),
            **run.options_for(type(self)),
        )
        # ordinary tools get the state's timeout (transition bodies get it in the run)
        set_agent_tools(self, [
            t if t in transition_tools or not isinstance(t, llm.FunctionTool)
            else _with_timeout(t, self.tool_timeout, Redactor(run.context).text)
            for t in self.tools
        ])

    @property
    def run(self) -> StateRun[C]:
        """The flow run this agent belongs to."""
        return self._run

    @property
    def context(self) -> C:
        """The shared Context of the call (same object as ``session.userdata``)."""
        return self._run.context

    def compose_instructions(self, context: C, note: str | None = None) -> str:
        """The prompt, the brief of what the call has established, and the handoff note.

        The brief leaves sensitive fields out, and a plain field quoting a value one of
        them held (an LLM copied the PIN into ``topic``) is scrubbed of it."""
        parts = [self.prompt]
        if brief := Redactor(context).text(context.brief()):
            parts.append(f"What this call has established so far:\n{brief}")
        if note:
            parts.append(f"Note from the previous agent: {note}")
        return "\n\n".join(parts)

    bridge: str | None = None
    """The bridge line (the transition's ``say=``) this agent says first on entering; set by
    the run for the visit that made it, cleared once said."""

    def say_bridge(self) -> None:
        """Say the pending bridge line now, once: it is queued before the agent's first reply,
        whose LLM request runs while the line plays."""
        text, self.bridge = self.bridge, None
        if text:
            self.session.say(text)

    async def on_enter(self) -> None:
        """Speak first when the state becomes active (unless ``speaks_first`` is False)."""
        self.say_bridge()
        if self.speaks_first and not self._run.resuming:
            if self.entry_prompt:
                self.session.generate_reply(instructions=self.entry_prompt)
            else:
                self.session.generate_reply()


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


def _with_timeout(
    tool: llm.FunctionTool, seconds: float, scrub: Callable[[str], str]
) -> llm.FunctionTool:
    """The same tool (name, schema, docstring), stopped with a ToolError after ``seconds``;
    a ToolError it raises reaches the LLM ``scrub``-bed of sensitive values."""
    name = tool.info.name

    async def timed(*args: Any, **kwargs: Any) -> Any:
        try:
            async with Deadline(seconds):  # paused while a sub-task of the tool talks
                return await tool(*args, **kwargs)
        except ToolError as exc:
            message = scrub(exc.message)
            if message == exc.message:
                raise
            raise ToolError(message) from None
        except TimeoutError:
            raise ToolError(
                f"{name} took longer than {seconds:g} s and was stopped; it may be retried, "
                "or offer the caller a human"
            ) from None

    functools.update_wrapper(timed, tool)
    # LiveKit reads the signature at every call; preset it so it does not unwrap each time
    timed.__signature__ = inspect.signature(tool)  # type: ignore[attr-defined]
    return llm.FunctionTool(timed, tool.info)


