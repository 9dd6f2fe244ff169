"""The LiveKit private names handoff cannot avoid, in one place.

Every other module uses LiveKit's public API only (``grep -rn "\\._[a-z]" handoff/``
finds LiveKit private names here and nowhere else). Each function below names the
LiveKit version and line it depends on; ``tests/test_livekit_pins.py`` fails loudly
when an upgrade removes or changes one of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from livekit.agents import Agent, AgentServer, llm

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
