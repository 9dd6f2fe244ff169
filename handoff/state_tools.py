"""A State's ordinary tools: collected from its class body, and wrapped for the call.

``tools = [...]`` and free ``function_tool``s set as class attributes become the State's
``own_tools`` (LiveKit's ``Agent(tools=[...])``), never bound to an agent as ``self``; each
ordinary tool of an agent runs under the state's ``tool_timeout``, with its ToolErrors
scrubbed of sensitive values and its pii arguments remembered before it runs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from livekit.agents import RunContext, ToolError, llm

from .approval import ApprovalRecord, approval_of, ask, denial
from .context import Context
from .deadline import Deadline
from .errors import Finding, FlowDefinitionError
from .redaction import Redactor
from .sensitive_args import remember_arguments


def collect_free_tools(cls: type[Any]) -> None:
    """Move ``tools = [...]`` and free function tools set as class attributes to
    ``own_tools`` (LiveKit would bind a class attribute tool to the agent as ``self``)."""
    found: list[llm.Tool | llm.Toolset] = []
    if "tools" in cls.__dict__:
        declared = cls.__dict__["tools"]
        bad = [t for t in declared if not isinstance(t, llm.FunctionTool | llm.RawFunctionTool
                                                     | llm.Toolset)] if isinstance(
            declared, list | tuple) else [declared]
        if bad:
            raise FlowDefinitionError(None, [Finding(
                "error", "bad-tools", f"{cls.__name__}.tools holds {bad[0]!r}",
                "list @function_tool functions (or Toolsets): tools = [lookup_order]",
                state=cls.__name__)])
        found.extend(declared)
        delattr(cls, "tools")  # Agent.tools is a property LiveKit reads
    for attr, value in list(cls.__dict__.items()):
        if isinstance(value, llm.FunctionTool | llm.RawFunctionTool) and not _is_method(value):
            found.append(value)
            delattr(cls, attr)
    if found:
        cls.own_tools = (*cls.own_tools, *found)


def _is_method(tool: llm.FunctionTool | llm.RawFunctionTool) -> bool:
    try:
        params = list(inspect.signature(tool).parameters)
    except (TypeError, ValueError):
        return True
    return bool(params) and params[0] == "self"


class ToolScope:
    """What a tool call needs of the call it belongs to: the state's timeout, the call's
    Context (whose scrubber is made only when a ToolError needs it), the tool's pii
    parameters, and who hears an approval (see :func:`with_timeout`)."""

    __slots__ = ("context", "pii", "seconds", "tell")

    def __init__(self, seconds: float, context: Context, pii: frozenset[str] | None = None,
                 tell: Callable[[ApprovalRecord], None] | None = None) -> None:
        self.seconds, self.context, self.pii, self.tell = seconds, context, pii, tell

    def scrub(self, text: str) -> str:
        """``text`` without the sensitive values of the call's Context."""
        return Redactor(self.context).text(text)


def with_timeout(tool: llm.FunctionTool, scope: ToolScope) -> llm.FunctionTool:
    """The same tool (name, schema, docstring), stopped with a ToolError after
    ``scope.seconds``; a ToolError it raises reaches the LLM scrubbed of the sensitive values
    of ``scope.context``, and the values of its ``scope.pii`` parameters are sensitive values
    of that Context before it runs. A ``@confirm`` tool runs only once the caller said yes
    (``scope.tell`` hears the approval)."""
    name, approval = tool.info.name, approval_of(tool)
    signature = inspect.signature(tool)

    def timed(*args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        return _run(tool, name, approval, signature, scope, args, kwargs)

    functools.update_wrapper(timed, tool, updated=())  # not the tool's attributes: memory
    # LiveKit reads the signature at every call; preset it so it does not unwrap each time
    timed.__signature__ = signature  # type: ignore[attr-defined]
    return llm.FunctionTool(timed, tool.info)


def timed_method(tool: llm.FunctionTool, scope_of: Callable[[Any, str], ToolScope]
                 ) -> llm.FunctionTool:
    """A State's method tool, run as :func:`with_timeout` runs a tool, wrapped once per
    class: LiveKit binds it to each agent as it binds the method, and ``scope_of(agent,
    name)`` gives what the call needs when it runs (no wrapper made per agent)."""
    name, approval = tool.info.name, approval_of(tool)
    full = inspect.signature(tool)  # with the agent's ``self``
    signature = full.replace(parameters=list(full.parameters.values())[1:])

    # a plain function returning _run's coroutine: LiveKit awaits what a tool returns,
    # so a call makes one coroutine, not two
    def timed(agent: Any, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        return _run(functools.partial(tool, agent), name, approval, signature,
                    scope_of(agent, name), args, kwargs)

    functools.update_wrapper(timed, getattr(tool, "__wrapped__", tool))  # name, docstring, markers
    timed.__signature__ = full  # type: ignore[attr-defined]
    timed.handoff_timed = True  # type: ignore[attr-defined]
    return llm.FunctionTool(timed, tool.info)


def is_timed(tool: object) -> bool:
    """True for a method tool :func:`timed_method` wrapped (bound to an agent or not)."""
    return getattr(tool, "handoff_timed", False) is True


async def _run(tool: Callable[..., Any], name: str, approval: Any,
               signature: inspect.Signature, scope: ToolScope, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> Any:
    if scope.pii or approval is not None:  # what they read: the arguments by name
        # LiveKit passes the arguments positionally (a realtime model's calls): bind them
        called = {k: v for k, v in signature.bind_partial(*args, **kwargs).arguments.items()
                  if not isinstance(v, RunContext)}
    if scope.pii:
        remember_arguments(scope.context, scope.pii, called)
    if approval is not None:  # asked before the deadline starts: the caller takes their time
        denied = await ask(approval, name, called, scope.tell or (lambda _: None))
        if denied is not None:
            raise ToolError(scope.scrub(denial(name, denied)))
    try:
        with Deadline(scope.seconds):  # paused while a sub-task of the tool talks
            return await tool(*args, **kwargs)
    except ToolError as exc:
        message = scope.scrub(exc.message)
        if message == exc.message:
            raise
        raise ToolError(message) from None
    except TimeoutError:
        raise ToolError(
            f"{name} took longer than {scope.seconds:g} s and was stopped; it may be retried, "
            "or offer the caller a human"
        ) from None


