"""State (a specialised agent) and @transition (a declared edge of the flow).

A State is a LiveKit ``Agent`` subclass whose class body *is* its definition::

    class Triage(State[Call]):
        \"\"\"Finds out what the caller needs.\"\"\"
        tier = "fast"
        history = "last:6"
        instructions = "Find out what the caller needs."

        @transition(to="Billing", when=lambda c: c.verified, refused="verify the account first")
        async def billing_question(self, ctx: RunContext[Call]) -> None:
            \"\"\"Call when the caller has a question about a bill.\"\"\"

Each ``@transition`` becomes a LiveKit function tool of the state's agent; the
docstring is what the LLM reads, the typed parameters are what it must supply.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, get_type_hints

from livekit.agents import Agent, RunContext, ToolError, llm
from livekit.agents.llm.utils import is_context_type

from .context import Context
from .history import HistoryPolicy

if TYPE_CHECKING:
    from .run import FlowRun

C = TypeVar("C", bound=Context)
logger = logging.getLogger("handoff")

Guard = Callable[..., bool]

RETURN = "<return>"
"""Target of a transition that goes back to the state that started a side trip."""
Body = Callable[..., Awaitable[Any]]


class TransitionDef:
    """One ``@transition``: the edge, its guard, its body and the tool the LLM sees.

    Defined in a State's class body it is an edge *from* that state (and from its
    subclasses); defined at module level and passed to ``Flow(global_transitions=...)``
    it is valid from every state.
    """

    def __init__(
        self,
        func: Body,
        *,
        to: str | type[State[Any]],
        when: Guard | None,
        refused: str | Callable[[Any], str] | None,
        history: str | None,
        name: str | None,
        returns: bool = False,
    ) -> None:
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"@transition {func.__qualname__} must be an `async def`")
        self.func = func
        self.to = to
        self.when = when
        self.refused = refused
        self.history = HistoryPolicy.parse(history) if history is not None else None
        self.name = name or func.__name__
        self.returns = returns
        self.doc = inspect.getdoc(func) or ""
        self.owner: type[State[Any]] | None = None
        self.is_method, self.context_param, self.params = _split_signature(func)
        self.untyped_params = [p.name for p in self.params if p.annotation is p.empty]
        self._guard_takes_args = when is not None and _arity(when) > 1
        self.__doc__ = self.doc

    # -- descriptor protocol: the class body names it, instances do not turn it into a tool
    def __set_name__(self, owner: type, attr: str) -> None:
        self.owner = owner

    def __get__(self, obj: object, objtype: type | None = None) -> TransitionDef:
        return self

    @property
    def target(self) -> str:
        """The target state's name as written (a class is named by its state name)."""
        return self.to if isinstance(self.to, str) else self.to.state_name()

    @property
    def description(self) -> str:
        """The first paragraph of the docstring: what the LLM reads about this tool."""
        return self.doc.split("\n\n", 1)[0].strip()

    def guard_text(self) -> str | None:
        """The guard's expression as written (``c.verified``), for diagrams and logs."""
        from .guards import guard_text

        return guard_text(self.when)

    def check_guard(self, context: Any, arguments: dict[str, Any]) -> str | None:
        """None when the guard allows the move, else the reason written for the LLM."""
        if self.when is None:
            return None
        allowed = self.when(context, **arguments) if self._guard_takes_args else self.when(context)
        if allowed:
            return None
        if callable(self.refused):
            return str(self.refused(context))
        return self.refused or f"the conditions for '{self.name}' are not met"

    async def run_body(self, agent: State[Any] | None, ctx: Any, arguments: dict[str, Any]) -> Any:
        """Run the user's body; ``agent`` is None only for global transitions."""
        args: list[Any] = []
        if self.is_method:
            args.append(agent)
        kwargs = dict(arguments)
        if self.context_param is not None:
            kwargs[self.context_param] = ctx
        return await self.func(*args, **kwargs)

    def tool_signature(self) -> tuple[inspect.Signature, dict[str, Any]]:
        """The signature and annotations the LLM-facing function tool exposes."""
        ctx_name = "ctx" if all(p.name != "ctx" for p in self.params) else "_handoff_ctx"
        params = [
            inspect.Parameter(ctx_name, inspect.Parameter.KEYWORD_ONLY, annotation=RunContext),
            *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in self.params),
        ]
        annotations: dict[str, Any] = {ctx_name: RunContext}
        for p in self.params:
            annotations[p.name] = str if p.annotation is p.empty else p.annotation
        params = [
            p if p.annotation is not p.empty else p.replace(annotation=str) for p in params
        ]
        return inspect.Signature(params), annotations

    def __repr__(self) -> str:
        where = self.owner.__name__ if self.owner else "global"
        return f"<transition {where}.{self.name} -> {self.target}>"


def transition(
    *,
    to: str | type[State[Any]],
    when: Guard | None = None,
    refused: str | Callable[[Any], str] | None = None,
    history: str | None = None,
    name: str | None = None,
    returns: bool = False,
) -> Callable[[Body], TransitionDef]:
    """Declare an edge of the flow, offered to the LLM as a function tool.

    Args:
        to: the target State (class or state name).
        when: a guard on the Context (``lambda c: c.verified``); it may also take the
            transition's arguments by name (``lambda c, amount: amount <= c.limit``).
        refused: the reason the LLM is told when the guard says no (text, or a
            function of the Context returning text).
        history: the history policy for this edge, overriding the target state's.
        name: the trigger/tool name; defaults to the function's name.
        returns: this edge starts a side trip: the current state is pushed on the run's
            return stack, and a transition with ``to=RETURN`` in the side trip comes back
            to it (a dialogue stack, like Rasa's).

    The decorated ``async def`` receives the ``RunContext`` (if it declares one) and the
    arguments the LLM supplied; it may update ``ctx.userdata`` and may raise
    ``TransitionRefused`` to refuse the move. Its return value (if any) is a handoff
    note: the new agent finds it in its instructions.
    """

    def decorate(func: Body) -> TransitionDef:
        return TransitionDef(func, to=to, when=when, refused=refused, history=history, name=name,
                             returns=returns)

    return decorate


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
                raise TypeError(f"{cls.__name__}.instructions must be a string")
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
        run: FlowRun[C],
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
            **(run.flow.agent_options(type(self)) if run.flow.agent_options else {}),
        )
        # ordinary tools get the state's timeout (transition bodies get it in the run)
        self._tools = [
            t if t in transition_tools or not isinstance(t, llm.FunctionTool)
            else _with_timeout(t, self.tool_timeout)
            for t in self._tools
        ]

    @property
    def run(self) -> FlowRun[C]:
        """The flow run this agent belongs to."""
        return self._run

    @property
    def context(self) -> C:
        """The shared Context of the call (same object as ``session.userdata``)."""
        return self._run.context

    def compose_instructions(self, context: C, note: str | None = None) -> str:
        """The prompt, the brief of what the call has established, and the handoff note."""
        parts = [self.prompt]
        if brief := context.brief():
            parts.append(f"What this call has established so far:\n{brief}")
        if note:
            parts.append(f"Note from the previous agent: {note}")
        return "\n\n".join(parts)

    async def on_enter(self) -> None:
        """Speak first when the state becomes active (unless ``speaks_first`` is False)."""
        if self.speaks_first and not self._run.resuming:
            if self.entry_prompt:
                self.session.generate_reply(instructions=self.entry_prompt)
            else:
                self.session.generate_reply()


def _guarded_hook(hook: Callable[[Any], Awaitable[None]], name: str) -> Any:
    @functools.wraps(hook)
    async def guarded(self: State[Any]) -> None:
        try:
            await hook(self)
        except Exception as exc:
            logger.exception("%s.%s raised", type(self).__name__, name)
            self._run.failures.note(f"{type(self).__name__}.{name} raised {exc!r}")
            if name == "on_enter" and self.speaks_first:
                self.session.generate_reply(instructions=(
                    "Something went wrong while preparing this step. Apologise in one short "
                    "sentence and ask how you can help."))

    guarded._handoff_guarded = True  # type: ignore[attr-defined]
    return guarded


def _with_timeout(tool: llm.FunctionTool, seconds: float) -> llm.FunctionTool:
    """The same tool (name, schema, docstring), stopped with a ToolError after ``seconds``."""
    name = tool.info.name

    async def timed(*args: Any, **kwargs: Any) -> Any:
        try:
            async with asyncio.timeout(seconds):
                return await tool(*args, **kwargs)
        except TimeoutError:
            raise ToolError(
                f"{name} took longer than {seconds:g} s and was stopped; it may be retried, "
                "or offer the caller a human"
            ) from None

    functools.update_wrapper(timed, tool)
    # LiveKit reads the signature at every call; preset it so it does not unwrap each time
    timed.__signature__ = inspect.signature(tool)  # type: ignore[attr-defined]
    return llm.FunctionTool(timed, tool.info)


def _split_signature(func: Body) -> tuple[bool, str | None, list[inspect.Parameter]]:
    """(is a method, name of the RunContext parameter, the LLM-visible parameters)."""
    sig = inspect.signature(func)
    params = list(sig.parameters.values())
    is_method = bool(params) and params[0].name == "self"
    if is_method:
        params = params[1:]
    try:
        hints = get_type_hints(func)
    except Exception:  # unresolved forward references: fall back to raw annotations
        hints = dict(getattr(func, "__annotations__", {}))
    context_param = None
    visible = []
    for p in params:
        hint = hints.get(p.name, p.annotation)
        if hint is not p.empty and _is_run_context(hint):
            context_param = p.name
            continue
        visible.append(p.replace(annotation=hint))
    return is_method, context_param, visible


def _is_run_context(hint: Any) -> bool:
    try:
        return bool(is_context_type(hint, allow_subclasses=True))
    except Exception:
        return False


def _arity(fn: Callable[..., Any]) -> int:
    try:
        return len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return 1
