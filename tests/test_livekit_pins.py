"""The LiveKit private names in handoff/_livekit.py still mean what handoff assumes.

Each test exercises the installed livekit-agents through the pinned name; when an
upgrade changes one of them, this file fails first, naming the pin to revisit
(instead of a call misbehaving). The pins were read from ``_livekit.LIVEKIT_VERSION``.
"""

from __future__ import annotations

from livekit.agents import Agent, function_tool

from handoff import _livekit


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
