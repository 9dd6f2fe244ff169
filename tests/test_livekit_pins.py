"""The LiveKit private names in handoff/_livekit.py still mean what handoff assumes.

Each test exercises the installed livekit-agents through the pinned name; when an
upgrade changes one of them, this file fails first, naming the pin to revisit
(instead of a call misbehaving). The pins were read from ``_livekit.LIVEKIT_VERSION``.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, ClassVar

from livekit.agents import Agent, RunContext, function_tool, llm
from livekit.agents.llm.tool_context import find_function_tools

from handoff import Context, Flow, State, _livekit
from handoff.testing.scripted import ScriptedLLM


class _Plain(Agent):
    @function_tool
    async def lookup(self, what: str) -> str:
        """Look something up."""
        return what


def test_set_agent_tools_replaces_what_agent_tools_returns() -> None:
    agent = _Plain(instructions="x")
    assert [t.info.name for t in agent.tools] == ["lookup"]  # type: ignore[union-attr]
    assert "_tools" in vars(agent), "Agent no longer keeps its tools in `_tools`"
    _livekit.set_agent_tools(agent, [])
    assert agent.tools == []


def test_agent_server_connection_flags_exist_and_start_false() -> None:
    """worker_connection_failed / worker_connecting read two AgentServer flags."""
    from livekit.agents import AgentServer

    server = AgentServer()
    for name in ("_connection_failed", "_connecting"):
        assert isinstance(getattr(server, name, None), bool), (
            f"livekit-agents no longer has AgentServer.{name}: update handoff/_livekit.py")
    assert _livekit.worker_connection_failed(server) is False
    assert _livekit.worker_connecting(server) is False


def test_the_activity_context_variable_names_the_asking_agent() -> None:
    """asking_agent_id reads LiveKit's per-activity context variable (None outside one)."""
    from livekit.agents.voice import agent_activity

    assert hasattr(agent_activity, "_AgentActivityContextVar"), (
        "livekit-agents no longer has _AgentActivityContextVar: update handoff/_livekit.py")
    assert _livekit.asking_agent_id() is None


async def test_session_closing_and_handoff_task_attributes_exist() -> None:
    """session_is_closing / pending_handoff_tasks read three AgentSession attributes."""
    from livekit.agents import AgentSession

    session: AgentSession = AgentSession()
    for name in ("_closing_task", "_closing", "_update_activity_atask", "_activity"):
        assert hasattr(session, name), (
            f"livekit-agents no longer has AgentSession.{name}: update handoff/_livekit.py")
    assert _livekit.session_is_closing(session) is False
    assert _livekit.pending_handoff_tasks(session) == []


async def test_a_speech_handle_calls_back_with_each_item_it_records() -> None:
    """on_speech_items adds a SpeechHandle item callback (the realtime path records each
    function call on the speech before it runs the tool)."""
    from livekit.agents import llm
    from livekit.agents.voice import SpeechHandle

    speech = SpeechHandle.create()
    seen: list[llm.ChatItem] = []
    _livekit.on_speech_items(speech, seen.append)
    call = llm.FunctionCall(call_id="c1", name="lookup", arguments="{}")
    speech._item_added([call])
    assert seen == [call], "SpeechHandle no longer calls its item callbacks: update _livekit.py"


def test_a_state_agent_finds_the_tools_a_full_scan_of_it_finds() -> None:
    """tool_scan_names leaves out only names where LiveKit's scan cannot find a tool: an
    agent made with it holds every tool a full ``find_function_tools`` finds, including
    a wrapped method tool, a raw tool, a tool set on the instance before ``super().__init__``
    and a tool behind a property; ``dir`` of the agent is the full one again afterwards."""
    @function_tool
    async def free(ctx: RunContext[Context]) -> str:
        """A free tool."""
        return "free"

    def decorate(fn: Any) -> Any:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await fn(*args, **kwargs)
        return wrapper

    class Scanned(State[Context]):
        """Every way a tool can sit on an agent."""

        instructions = "Scan."
        speaks_first = False
        plain_value: ClassVar[str] = "not a tool"

        def __init__(self) -> None:
            self.on_instance = free
            super().__init__()

        @function_tool
        async def method_tool(self, ctx: RunContext[Context]) -> str:
            """A method tool."""
            return "m"

        @decorate
        @function_tool
        async def wrapped_tool(self, ctx: RunContext[Context]) -> str:
            """A method tool wrapped after it was made one."""
            return "w"

        @function_tool(raw_schema={"name": "raw_tool", "description": "Raw.",
                                   "parameters": {"type": "object", "properties": {}}})
        async def raw_tool(self, raw_arguments: dict[str, object]) -> str:
            return "r"

        @property
        def by_property(self) -> llm.FunctionTool:
            return free

        def helper(self) -> None:
            """Not a tool."""

        @classmethod
        def class_helper(cls) -> None:
            """Not a tool."""

    flow = Flow("scan", context=Context, initial=Scanned, states=[Scanned])
    logging.getLogger("livekit.agents").disabled = True  # the wrapped tool's warning
    try:
        agent = flow.new_run(llm=ScriptedLLM([])).make_agent("Scanned")
        full = [*find_function_tools(Scanned), free, free]  # the instance's and the property's
    finally:
        logging.getLogger("livekit.agents").disabled = False
    names = sorted(t.info.name for t in agent.tools if isinstance(t, llm.FunctionTool | llm.RawFunctionTool))
    assert names == sorted(t.info.name for t in full)
    assert {"method_tool", "wrapped_tool", "raw_tool"} <= set(names)
    assert names.count("free") == 2
    assert {"plain_value", "helper", "class_helper", "tool_timeout"} <= set(dir(agent))
    assert "_scanning" not in vars(agent)


def test_the_emitter_hands_a_listener_each_event_once() -> None:
    # handoff._listeners presets a (*args) signature so emit skips counting parameters
    from livekit.rtc import EventEmitter

    from handoff._listeners import listener

    heard: list[object] = []
    emitter: EventEmitter[str] = EventEmitter()
    emitter.on("close", listener(heard.append))
    emitter.emit("close", "first")
    emitter.emit("close", "second")
    assert heard == ["first", "second"]


def test_a_span_started_here_is_the_one_livekits_tracer_starts() -> None:
    """Same provider, parent, start time and attributes (the conversation id included)."""
    from unittest import mock

    from livekit.agents.telemetry import set_tracer_provider, tracer
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = tracer._tracer_provider
    set_tracer_provider(provider)
    try:
        parent = tracer.start_span("parent")
        context = trace.set_span_in_context(parent)
        with mock.patch("livekit.agents.telemetry.gen_ai._conversation_id", return_value="RM_1"):
            for start in (tracer.start_span, _livekit.start_span):
                start("x", context=context, attributes={"a": 1}, start_time=123).end()
            _livekit.start_span("y", attributes={"b": "2"}).end()
        parent.end()
    finally:
        tracer.set_provider(previous)
        provider.shutdown()
    theirs, ours, point, _ = exporter.get_finished_spans()
    for span in (theirs, ours):
        assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert (ours.name, ours.start_time, dict(ours.attributes or {})) == (
        theirs.name, theirs.start_time, dict(theirs.attributes or {}))
    assert dict(ours.attributes or {}) == {"gen_ai.conversation.id": "RM_1", "a": 1}, (
        "LiveKit's tracer no longer adds what _livekit.start_span adds: update handoff/_livekit.py")
    assert point.parent is None and dict(point.attributes or {})["b"] == "2"
