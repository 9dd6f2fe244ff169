"""The LiveKit private names handoff cannot avoid, in one place.

Every other module uses LiveKit's public API only (``grep -rn "\\._[a-z]" handoff/``
finds LiveKit private names here and nowhere else). Each function below names the
LiveKit version and line it depends on; ``tests/test_livekit_pins.py`` fails loudly
when an upgrade removes or changes one of them.
"""

from __future__ import annotations

import asyncio
import types
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from livekit.agents import Agent, AgentServer, AgentSession, llm
from livekit.agents.voice import SpeechHandle
from opentelemetry import context as otel_context
from opentelemetry import trace

LIVEKIT_VERSION = "1.8.9"
"""The livekit-agents release every pin below was read from."""


def set_agent_tools(agent: Agent, tools: Sequence[llm.Tool | llm.Toolset]) -> None:
    """Replace the tools of an agent that is not running yet, synchronously.

    ``Agent.update_tools`` does the same but is a coroutine, and a State sets its
    tools from ``__init__``. livekit-agents 1.8.9, voice/agent.py line 91
    (``self._tools = [*tools, *find_function_tools(self)]``) and line 166 (the ``tools``
    property returns a copy of ``_tools``).
    """
    agent._tools = list(tools)


_TOOL_MARKERS = ("__wrapped__", "__livekit_tool_info", "__livekit_raw_tool_info")
_BUILTIN_CALLABLES = (types.WrapperDescriptorType, types.MethodDescriptorType,
                      types.BuiltinFunctionType, types.ClassMethodDescriptorType)
_NONE = object()
_scan_names: weakref.WeakKeyDictionary[type, tuple[str, ...]] = weakref.WeakKeyDictionary()


def tool_scan_names(cls: type) -> tuple[str, ...]:
    """The names of ``cls``'s attributes where LiveKit's scan for method tools can find one.

    ``Agent.__init__`` finds an agent's method tools with ``find_function_tools(self)``
    (livekit-agents 1.8.9, voice/agent.py line 91): ``inspect.getmembers(self)``, a
    ``getattr`` of every name ``dir(self)`` lists, each kept when it is a FunctionTool or
    RawFunctionTool or a callable carrying ``__wrapped__``, ``__livekit_tool_info`` or
    ``__livekit_raw_tool_info`` (llm/tool_context.py lines 482-530). A State lists ~135
    names, and the scan was most of the cost of making its agent. This leaves out only the
    names that cannot give a tool that way: plain data (neither callable nor a descriptor),
    functions and class or static methods carrying none of the three markers (their bound
    forms read attributes from the function), and builtin methods (which carry none).
    The same tools are found, in the same order (``dir`` is sorted). Worked out once per
    class; a class that defines its own attribute lookup gets every name.
    """
    names = _scan_names.get(cls)
    if names is not None:
        return names
    custom_lookup = any(k in vars(klass) for klass in cls.__mro__[:-1]
                        for k in ("__getattr__", "__getattribute__"))
    kept = []
    for name in dir(cls):
        value = next((vars(klass)[name] for klass in cls.__mro__ if name in vars(klass)), _NONE)
        if custom_lookup or value is _NONE or not _cannot_be_a_tool(value):
            kept.append(name)
    _scan_names[cls] = names = tuple(kept)
    return names


def _cannot_be_a_tool(value: Any) -> bool:
    if isinstance(value, classmethod | staticmethod):
        value = value.__func__
    if isinstance(value, types.FunctionType):
        return not any(hasattr(value, marker) for marker in _TOOL_MARKERS)
    if isinstance(value, _BUILTIN_CALLABLES):
        return True
    return not callable(value) and not hasattr(type(value), "__get__")


def on_speech_items(speech: SpeechHandle, callback: Callable[[llm.ChatItem], None]) -> None:
    """Call ``callback`` with each chat item LiveKit records for ``speech``: a realtime
    model's function call reaches it before LiveKit runs the tool and logs its arguments.

    livekit-agents 1.8.9, voice/speech_handle.py line 306 (``_add_item_added_callback``),
    and agent_activity.py line 4634: the realtime path's ``_tool_execution_started_cb``
    calls ``speech_handle._item_added([fnc_call])`` before generation.py line 994 logs
    ``executing tool`` with the arguments.
    """
    speech._add_item_added_callback(callback)


def worker_connection_failed(server: AgentServer) -> bool:
    """True once an ``AgentServer`` gave up registering with LiveKit (``max_retry`` spent).

    livekit-agents 1.8.9, worker.py line 1166 sets ``AgentServer._connection_failed``
    before it raises ``failed to connect to livekit after N attempts``;
    ``cli._run_worker`` logs that error and returns normally, so the flag is the only
    trace left once the CLI returns.
    """
    return bool(server._connection_failed)


def worker_connecting(server: AgentServer) -> bool:
    """True while an ``AgentServer`` is (re)connecting to LiveKit, i.e. not registered now.

    livekit-agents 1.8.9, worker.py line 1095 sets ``AgentServer._connecting`` at each
    connection attempt and clears it at line 1155 once LiveKit answered the
    registration; no event is emitted when a registered connection drops.
    """
    return bool(server._connecting)


def asking_agent_id() -> str | None:
    """The id of the agent whose activity is running the current task (an LLM request).

    LiveKit sets a context variable around each activity's work and has no public
    accessor. livekit-agents 1.8.9, voice/agent_activity.py line 125
    (``_AgentActivityContextVar = contextvars.ContextVar["AgentActivity"](...)``).
    """
    try:
        from livekit.agents.voice.agent_activity import _AgentActivityContextVar

        return str(_AgentActivityContextVar.get().agent.id)
    except (ImportError, LookupError, AttributeError):
        return None


def session_is_closing(session: AgentSession[Any]) -> bool:
    """Whether ``session`` has begun closing (LiveKit has no public flag; the ``close``
    event only comes at the end). livekit-agents 1.8.9, voice/agent_session.py line 1264
    (``_is_closing``: ``_closing_task is not None or _closing``).
    """
    return bool(getattr(session, "_closing_task", None) is not None
                or getattr(session, "_closing", False))


def pending_handoff_tasks(session: AgentSession[Any]) -> list[asyncio.Future[Any]]:
    """The session's agent-update task and the new activity's ``on_enter`` task, while
    they run: LiveKit has no public "handoff finished" signal for a handoff started by
    ``update_agent`` outside a ``session.run``. livekit-agents 1.8.9,
    voice/agent_session.py line 1782 (``_update_activity_atask``) and
    voice/agent_activity.py line 405 (``_on_enter_task``).
    """
    tasks = (getattr(session, "_update_activity_atask", None),
             getattr(getattr(session, "_activity", None), "_on_enter_task", None))
    return [t for t in tasks if isinstance(t, asyncio.Future) and not t.done()]


def start_span(name: str, *, attributes: dict[str, Any],
               context: otel_context.Context | None = None,
               start_time: int | None = None) -> trace.Span:
    """``livekit.agents.telemetry.tracer.start_span(name, ...)``: the same span on the
    provider LiveKit exports to, with the conversation id LiveKit adds, without binding
    its signature at every call (inspect's ``Signature.bind``, ~10 µs a span).

    livekit-agents 1.8.9, telemetry/traces.py line 193 (``_DynamicTracer.start_span``
    binds the arguments, passes the attributes through ``_with_conversation_id`` of line
    172 and calls ``self._tracer.start_span``).
    """
    from livekit.agents.telemetry import tracer
    from livekit.agents.telemetry.traces import _with_conversation_id

    return tracer._tracer.start_span(name, context=context,
                                     attributes=_with_conversation_id(attributes),
                                     start_time=start_time)
