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
