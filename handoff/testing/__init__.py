"""Test your flow: a scripted LLM, hypothesis strategies, a generated state machine, paths,
exhaustive exploration.

    from handoff.testing import FlowStateMachine, explore, shortest_paths, transition_cover

    TestMyFlow = FlowStateMachine(flow).TestCase                       # pure FSM, fast
    TestMyFlowLive = FlowStateMachine(flow, mode="session").TestCase   # real AgentSession
    explore(flow, depth=4).raise_if_failed()                           # every move sequence

See docs/testing.md. The pytest plugin (``handoff.testing.pytest_plugin``, installed
as a ``pytest11`` entry point) adds fixtures and ``--handoff-coverage``. The oracle's
parts (``expect``, ``violations``) and the strategy helpers (``for_type``) live in
their submodules.
"""

from .coverage import CoverageObserver, FlowCoverage
from .driver import FlowDriver, settle
from .explore import Exploration, Move, explore
from .machine import FlowMachineBase, FlowStateMachine
from .oracle import checking
from .paths import FlowPath, FlowPaths, Step, shortest_paths, transition_cover
from .profiles import load_profile, register_profiles
from .realtime import ScriptedRealtimeModel, ScriptedRealtimeSession, Truncation
from .replaying import replay
from .scripted import (
    Policy,
    Reply,
    ReplyLike,
    ScriptedLLM,
    ScriptExhausted,
    ToolCall,
    Turn,
    call,
    fail,
    per_state,
)
from .strategies import (
    Attempt,
    arguments,
    attempts,
    context_changes,
    contexts,
    triggers,
    walks,
)

__all__ = [
    "Attempt",
    "CoverageObserver",
    "Exploration",
    "FlowCoverage",
    "FlowDriver",
    "FlowMachineBase",
    "FlowPath",
    "FlowPaths",
    "FlowStateMachine",
    "Move",
    "Policy",
    "Reply",
    "ReplyLike",
    "ScriptExhausted",
    "ScriptedLLM",
    "ScriptedRealtimeModel",
    "ScriptedRealtimeSession",
    "Step",
    "ToolCall",
    "Truncation",
    "Turn",
    "arguments",
    "attempts",
    "call",
    "checking",
    "context_changes",
    "contexts",
    "explore",
    "fail",
    "load_profile",
    "per_state",
    "register_profiles",
    "replay",
    "settle",
    "shortest_paths",
    "transition_cover",
    "triggers",
    "walks",
]
