"""@transition: a declared edge of the flow, offered to the LLM as a function tool.

:class:`TransitionDef` holds the edge (target, guard, refusal text, history override,
side-trip marker), the user's body and what the LLM-facing tool looks like (the
signature without the ``RunContext``). :data:`RETURN` is the target of an edge that
goes back to the state that started a side trip.

This module knows states only by name: a class target is anything with a
``state_name()`` (a :class:`~handoff.state.State` subclass).
"""

from __future__ import annotations

import dis
import inspect
import re
import types
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, get_args, get_origin, get_type_hints, overload

from livekit.agents import RunContext, llm
from livekit.agents.llm.utils import function_arguments_to_pydantic_model
from pydantic import BaseModel, TypeAdapter, ValidationError

from .approval import Approval
from .errors import Finding, FlowDefinitionError
from .guards import GuardCall, GuardParameters, call_guard, guard_text
from .history import POLICIES, HistoryPolicy

Guard = Callable[..., bool]
Target = Any  # a state name, a State class (anything with ``state_name()``), or RETURN

RETURN = "<return>"
"""Target of a transition that goes back to the state that started a side trip."""
Body = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Chosen:
    """What a body that chooses where the call goes returns when it also leaves a note:
    ``return Chosen("Booked", note="Tuesday at 10 is booked")`` from a ``to=[...]`` body,
    or the frame a ``back_to=[...]`` return goes to. The next agent finds the note in its
    instructions, as it finds the return value of any other body."""

    state: str | Any
    """The state's name, or its State class."""
    note: str | None = None


class Named(Protocol):
    """A transition's class target: a State class (its ``state_name()`` is the state's name)."""

    def state_name(self) -> str: ...


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
        to: str | Named | Sequence[str | Named],
        when: Guard | None,
        refused: str | Callable[[Any], str] | None,
        history: str | None,
        name: str | None,
        returns: bool = False,
        say: str | Callable[[Any], str | None] | None = None,
        offered: bool = True,
        abandons: bool = False,
        back_to: Sequence[str | Named] | None = None,
        confirm: str | Approval | None = None,
    ) -> None:
        if isinstance(func, llm.FunctionTool | llm.RawFunctionTool):
            raise FlowDefinitionError(None, [Finding(
                "error", "tool-and-transition",
                f"@transition is stacked on @function_tool ({func.info.name})",
                "remove @function_tool: a @transition is already offered to the LLM as a tool",
                trigger=func.info.name)])
        if not inspect.iscoroutinefunction(func):
            raise FlowDefinitionError(None, [Finding(
                "error", "not-async", f"@transition {func.__qualname__} must be an `async def`",
                f"write `async def {func.__name__}(...)`", trigger=func.__name__)])
        self.func = func
        self.dynamic = isinstance(to, list | tuple)
        """Declared with several targets (``to=[...]``): the body returns the one it chose."""
        self.candidates: tuple[str | Named, ...] = (
            tuple(to) if isinstance(to, list | tuple) else (to,))  # type: ignore[assignment]
        self.to = to
        self.offered = offered
        """Offered to the LLM as a tool (``llm=True``); False: taken only by ``run.go()``."""
        if self.dynamic and (not self.candidates or RETURN in self.candidates):
            raise FlowDefinitionError(None, [Finding(
                "error", "bad-targets", f"@transition {func.__name__}: to={list(self.candidates)!r}",
                "list one or more state names (RETURN cannot be chosen by a body)",
                trigger=func.__name__)])
        self.abandons = abandons
        """Taking it drops the top frame of the return stack: the caller gave up the task
        the side trip interrupted (the record lists the frame)."""
        self.back_to: tuple[str | Named, ...] = tuple(back_to or ())
        """For ``to=RETURN``: the frames the body may choose to go back to (frames above the
        chosen one are dropped, with a record)."""
        bad = ("back_to= is for a to=RETURN transition" if self.back_to and to != RETURN
               else "back_to= lists no state" if back_to is not None and not self.back_to
               else "a to=RETURN transition leaves its frame already: abandons= is for "
                    "other targets" if abandons and to == RETURN else None)
        if bad:
            raise FlowDefinitionError(None, [Finding(
                "error", "bad-return", f"@transition {func.__name__}: {bad}",
                "write @transition(to=RETURN, back_to=[...]) to let the body choose the frame, "
                "or @transition(to=..., abandons=True) to drop the interrupted task",
                trigger=func.__name__)])
        self.when = when
        self.refused = refused
        try:
            self.history = HistoryPolicy.parse(history) if history is not None else None
        except ValueError:
            raise FlowDefinitionError(None, [Finding(
                "error", "bad-history", f"unknown history policy {history!r}", f"use {POLICIES}",
                trigger=name or func.__name__)]) from None
        self.name = name or func.__name__
        self.returns = returns
        self.say = say
        self.doc = inspect.getdoc(func) or ""
        self.owner: type | None = None
        self.is_method, self.context_param, self.params, declared = _split_signature(func)
        self.reads_self = self.is_method and _reads_self(func)
        """Whether the body uses its ``self``: on a run without a session its State is made
        for the body only then (making one costs more than the move)."""
        self.does_nothing = _does_nothing(func)
        """The body is only a docstring (or ``pass``, ``...``, ``return None``): a move
        skips calling it and its timeout (there is nothing to wait for)."""
        self.approval: Approval | None = None if confirm is None else (
            confirm if isinstance(confirm, Approval) else Approval(confirm)).checked(
            self.name, [p.name for p in self.params])
        """The caller's confirmation asked for before the body runs (``confirm=``)."""
        if self.approval is not None and not offered:
            raise FlowDefinitionError(None, [Finding(
                "error", "bad-confirm", f"@transition {self.name}: confirm= with llm=False",
                "the caller is asked only when the LLM takes the transition; code decides "
                "for itself: drop confirm= or llm=False", trigger=self.name)])
        self.result_type: Any = (declared if to == RETURN and declared not in _NO_RESULT
                                 and not self.back_to else None)
        """What a side trip's ``to=RETURN`` body hands back to the state that started it
        (its return annotation, like LiveKit's ``AgentTask[T]``); None: no result."""
        self._result_adapter: TypeAdapter[Any] | None = None
        self.untyped_params = [p.name for p in self.params if p.annotation is p.empty]
        self.guard_parameters = GuardParameters(when) if when is not None else None
        """Which of the transition's arguments the guard takes (by name)."""
        self._guard = GuardCall(when, self.guard_parameters) if when is not None else None
        self._arguments_model: type[BaseModel] | None = None
        self.__doc__ = self.doc

    # -- descriptor protocol: the class body names it, instances do not turn it into a tool
    def __set_name__(self, owner: type, attr: str) -> None:
        self.owner = owner

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> TransitionDef: ...

    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> Callable[..., Any]: ...

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        """On the class, the transition; on an agent, its body as a bound method (what
        calling ``self.book(ctx, day)`` from another method does: the body only, no move)."""
        if obj is None or not self.is_method:
            return self
        return types.MethodType(self.func, obj)

    @property
    def __name__(self) -> str:
        # LiveKit's @function_tool reads this first: say what to do instead of an AttributeError
        raise FlowDefinitionError(None, [Finding(
            "error", "tool-and-transition", f"@function_tool is stacked on @transition ({self.name})",
            "remove @function_tool: a @transition is already offered to the LLM as a tool",
            trigger=self.name)])

    @property
    def target(self) -> str:
        """The target state's name as written (a class is named by its state name); the
        candidates joined by ``|`` for a dynamic transition."""
        return "|".join(self.targets)

    @property
    def targets(self) -> list[str]:
        """Every declared target's name as written."""
        return [t if isinstance(t, str) else t.state_name() for t in self.candidates]

    @property
    def frames(self) -> list[str]:
        """The names of the ``back_to`` frames, as written."""
        return [t if isinstance(t, str) else t.state_name() for t in self.back_to]

    def chosen(self, output: Any) -> str | None:
        """The state name a choosing body returned (a name, a State class, or either in a
        :class:`Chosen`), or None when it returned something else."""
        if isinstance(output, Chosen):
            output = output.state
        if isinstance(output, str):
            return output
        state_name = getattr(output, "state_name", None)
        return str(state_name()) if callable(state_name) else None

    @property
    def description(self) -> str:
        """The first paragraph of the docstring: what the LLM reads about this tool."""
        return self.doc.split("\n\n", 1)[0].strip()

    def guard_text(self) -> str | None:
        """The guard's expression as written (``c.verified``), for diagrams and logs."""
        return guard_text(self.when)

    def check_guard(self, context: Any, arguments: dict[str, Any]) -> str | None:
        """None when the guard allows the move, else the reason written for the LLM.

        Synchronous (the pure model, the testing oracle): an async guard raises
        TypeError here; a call awaits :meth:`judge`."""
        if self.when is None:
            return None
        assert self.guard_parameters is not None
        allowed = call_guard(self.when, self.guard_parameters, context, arguments)
        if inspect.isawaitable(allowed):
            if inspect.iscoroutine(allowed):
                allowed.close()
            raise TypeError(f"the guard of {self.name!r} is async: await judge() instead")
        return None if allowed else self.refusal(context)

    async def judge(self, context: Any, arguments: dict[str, Any], timeout: float) -> str | None:
        """What a call asks: None when the guard allows the move, else the reason.

        An async guard is awaited; a slow plain guard is moved off the event loop (see
        :class:`~handoff.guards.GuardCall`); GuardTimeout when it does not answer in
        ``timeout`` seconds."""
        if self._guard is None:
            return None
        return None if await self._guard(context, arguments, timeout) else self.refusal(context)

    def refusal(self, context: Any) -> str:
        """The reason the LLM is told when the guard says no."""
        if callable(self.refused):
            return str(self.refused(context))
        return self.refused or f"the conditions for '{self.name}' are not met"

    @property
    def result_adapter(self) -> TypeAdapter[Any]:
        """The pydantic adapter that checks and serialises this side trip's result."""
        if self._result_adapter is None:
            self._result_adapter = TypeAdapter(self.result_type)
        return self._result_adapter

    def result_problem(self) -> str | None:
        """Why :attr:`result_type` cannot be a side trip's result (pydantic cannot check it,
        or its values are not JSON), or None. Checked when the Flow is built."""
        if self.result_type is None:
            return None
        if isinstance(self.result_type, str):
            return f"its return annotation {self.result_type!r} names nothing importable here"
        try:
            self.result_adapter.json_schema()
        except Exception as exc:  # PydanticSchemaGenerationError, InvalidJsonSchema, …
            return f"pydantic cannot check or serialise {self.result_name} ({type(exc).__name__})"
        return None

    @property
    def result_name(self) -> str:
        """The declared result type as written in code (``bool``, ``Identity``, ``list[str]``)."""
        return _type_text(self.result_type)

    def check_result(self, value: Any) -> tuple[Any, Any]:
        """(the result as the declared type, its JSON form) for what the body returned;
        ValueError with pydantic's reasons when it does not fit."""
        adapter = self.result_adapter
        try:
            typed = adapter.validate_python(value)
        except ValidationError as exc:
            reasons = "; ".join(_error_text(e) for e in exc.errors(include_url=False))
            raise ValueError(f"{value!r} is not a {self.result_name} ({reasons})") from None
        return typed, adapter.dump_python(typed, mode="json")

    def bridge_line(self, context: Any) -> str | None:
        """The line spoken while the new agent prepares its answer (``say=``), or None."""
        text = self.say(context) if callable(self.say) else self.say
        return text or None

    async def run_body(self, agent: object | None, ctx: Any, arguments: dict[str, Any]) -> Any:
        """Run the user's body; ``agent`` is None for global transitions, and for a body
        that never reads its ``self`` on a run without a session (:attr:`reads_self`)."""
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

    def arguments_model(self) -> type[BaseModel]:
        """The pydantic model LiveKit validates this transition's tool calls with (built
        from :meth:`tool_signature` by LiveKit's own function, once): ``run.go()`` checks
        code's arguments with it too."""
        if self._arguments_model is None:
            signature, annotations = self.tool_signature()

            def arguments(**_: Any) -> None: ...

            arguments.__signature__ = signature  # type: ignore[attr-defined]
            arguments.__annotations__ = annotations
            arguments.__name__ = self.name
            arguments.__doc__ = self.doc
            self._arguments_model = function_arguments_to_pydantic_model(arguments)
        return self._arguments_model

    def __repr__(self) -> str:
        where = self.owner.__name__ if self.owner else "global"
        return f"<transition {where}.{self.name} -> {self.target}>"


def transition(
    func: Body | None = None,
    /,
    *,
    to: str | Named | Sequence[str | Named] | None = None,
    when: Guard | None = None,
    refused: str | Callable[[Any], str] | None = None,
    history: str | None = None,
    name: str | None = None,
    returns: bool = False,
    say: str | Callable[[Any], str | None] | None = None,
    llm: bool = True,
    abandons: bool = False,
    back_to: Sequence[str | Named] | None = None,
    confirm: str | Approval | None = None,
) -> Callable[[Body], TransitionDef]:
    """Declare an edge of the flow, offered to the LLM as a function tool.

    Args:
        to: the target State (class or state name); or a list of them, and the body
            returns the one it chooses (LiveKit's "return the next agent from a tool").
        when: a guard on the Context (``lambda c: c.verified``); it may also take the
            transition's arguments by name (``lambda c, amount: amount <= c.limit``).
        refused: the reason the LLM is told when the guard says no (text, or a
            function of the Context returning text).
        history: the history policy for this edge, overriding the target state's.
        name: the trigger/tool name; defaults to the function's name.
        returns: this edge starts a side trip: the current state is pushed on the run's
            return stack, and a transition with ``to=RETURN`` in the side trip comes back
            to it (a dialogue stack, like Rasa's), with a typed result if it declares one.
        say: a bridge line ("Let me bring up your bill."), text or a function of the
            Context after the body ran: the new agent says it the moment it becomes active,
            while its LLM prepares the real answer, so the caller does not wait in silence.
            Never said when the move is refused or rolled back; the caller can interrupt it.
        llm: False makes it code-only: never offered to the LLM, taken by ``run.go()``
            from a tool, a hook, a timer or an event.
        abandons: taking it drops the top frame of the return stack: the caller gave up
            the task a side trip interrupted, so nothing will come back to it. The
            transition's record lists the dropped frame (``TransitionRecord.dropped``).
        back_to: for ``to=RETURN``: the frames (states that start side trips) the body
            may choose to go back to, instead of the top one ("which of your two
            interrupted tasks shall we continue?"); it returns one of them (or a
            :class:`Chosen` with a note), which must be on the stack; the frames above it
            are dropped, with a record. Checked when the Flow is built, drawn on diagrams.
        confirm: a question the agent asks the caller before the body runs, when the LLM
            takes it ("Shall I cancel ticket {ticket}?", ``{name}`` is the argument
            ``name``), or an :class:`~handoff.approval.Approval` with its silence timeout.
            A no, silence or the call ending refuses the move (kind ``denied``) with the
            caller's reason; see :mod:`handoff.approval`.

    The decorated ``async def`` receives the ``RunContext`` (if it declares one) and the
    arguments the LLM supplied; it may update ``ctx.userdata`` and may raise
    ``TransitionRefused`` to refuse the move. Its return value (if any) is a handoff
    note: the new agent finds it in its instructions; for ``to=[...]`` it is the target
    it chose instead (one of the list; anything else is refused and rolled back), or a
    :class:`Chosen` with the target and a note.

    A ``to=RETURN`` body annotated with a return type (``-> bool``, ``-> Identity``)
    returns the side trip's *result* instead, like LiveKit's ``AgentTask[T].complete()``:
    it is checked against the annotation (pydantic, lax), a value that does not fit is
    refused with pydantic's reasons and changes nothing, and the state that started the
    side trip receives it in :meth:`~handoff.state.State.on_return`.
    """

    if func is not None or to is None:
        what = getattr(func, "__name__", "...")
        raise FlowDefinitionError(None, [Finding(
            "error", "no-target", f"@transition {what} names no target state",
            'write @transition(to="NextState") (or to=["A", "B"] for a target the body '
            "chooses); an ordinary tool is @function_tool", trigger=what)])
    target = to

    def decorate(func: Body) -> TransitionDef:
        return TransitionDef(func, to=target, when=when, refused=refused, history=history,
                             name=name, returns=returns, say=say, offered=llm,
                             abandons=abandons, back_to=back_to, confirm=confirm)

    return decorate


def _reads_self(func: Callable[..., Any]) -> bool:
    """Whether a method's code reads its first argument (``self``), told from its
    bytecode once. Whatever it cannot tell counts as reading it: no code object, a
    wrapper taking ``*args``, zero-argument ``super()``, ``locals()``."""
    code = getattr(func, "__code__", None)
    if code is None or code.co_argcount == 0:
        return True
    name = code.co_varnames[0]
    if name in code.co_cellvars or "__class__" in code.co_freevars or "locals" in code.co_names:
        return True  # a nested function or lambda reads it, or super() / locals() might
    for instruction in dis.get_instructions(code):
        if instruction.opname.startswith(("LOAD_FAST", "STORE_FAST", "DELETE_FAST")):
            argval = instruction.argval
            if name == argval or (isinstance(argval, tuple) and name in argval):
                return True
    return False


_NOTHING_OPS = frozenset({"RESUME", "RETURN_GENERATOR", "POP_TOP", "NOP"})


def _does_nothing(func: Callable[..., Any]) -> bool:
    """Whether an ``async def``'s code only returns None, told from its bytecode once
    (a wrapper, a closure or anything it cannot read counts as doing something)."""
    code = getattr(func, "__code__", None)
    if not isinstance(func, types.FunctionType) or code is None or code.co_freevars:
        return False
    ops = [(i.opname, i.argval) for i in dis.get_instructions(code)
           if i.opname not in _NOTHING_OPS]
    return ops in ([("LOAD_CONST", None), ("RETURN_VALUE", None)], [("RETURN_CONST", None)])


def _split_signature(func: Body) -> tuple[bool, str | None, list[inspect.Parameter], Any]:
    """(is a method, name of the RunContext parameter, the LLM-visible parameters, the
    return annotation)."""
    sig = inspect.signature(func)
    params = list(sig.parameters.values())
    is_method = bool(params) and params[0].name == "self"
    if is_method:
        params = params[1:]
    try:
        hints = get_type_hints(func, include_extras=True)  # Annotated[..., Field(...)] kept
    except Exception:  # unresolved forward references (a Context defined in a function
        hints = _lenient_hints(func)  # under postponed annotations): resolve what can be
    context_param = None
    visible = []
    for p in params:
        hint = hints.get(p.name, p.annotation)
        if hint is not p.empty and _is_run_context(hint):
            context_param = p.name
            continue
        visible.append(p.replace(annotation=hint))
    return is_method, context_param, visible, hints.get("return", sig.return_annotation)


class _AnyForUnknown(dict[str, Any]):
    """A namespace where a name the module does not define is ``Any``."""

    def __missing__(self, key: str) -> Any:
        import builtins

        return getattr(builtins, key, Any)


def _lenient_hints(func: Body) -> dict[str, Any]:
    """The annotations of ``func``, text ones evaluated with its module's names and any
    other name of a parameter as ``Any`` (``RunContext[Local]`` is still a RunContext); one
    that cannot be evaluated at all stays text, and so does a return type naming something
    unknown (a side trip's result must be importable: ``bad-result-type`` says so)."""
    out: dict[str, Any] = {}
    module = dict(getattr(func, "__globals__", {}))
    namespace = _AnyForUnknown(module)
    for name, hint in getattr(func, "__annotations__", {}).items():
        try:
            names = module if name == "return" else namespace
            out[name] = eval(hint, module, names) if isinstance(hint, str) else hint
        except Exception:
            out[name] = hint
    return out


_NO_RESULT: tuple[Any, ...] = (None, type(None), "None", inspect.Signature.empty)
"""Return annotations that declare no side-trip result."""


def _type_text(hint: Any) -> str:
    """A type as code writes it: ``bool``, ``Identity``, ``list[str]``, ``Literal['a']``."""
    if isinstance(hint, type) and not get_args(hint):
        return hint.__name__
    return re.sub(r"\b(?:[a-z_][\w]*\.)+(?=[A-Za-z_])", "", str(hint))


def _error_text(error: Any) -> str:
    """One pydantic error as the LLM should read it: where, and what is wrong."""
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def _is_run_context(hint: Any) -> bool:
    """``RunContext``, ``RunContext[Call]`` or a subclass: the parameter LiveKit fills in."""
    origin = get_origin(hint) or hint
    return isinstance(origin, type) and issubclass(origin, RunContext)

