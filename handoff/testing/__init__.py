"""Test your flow: a scripted LLM, hypothesis strategies, a generated state machine, paths.

    from handoff.testing import FlowStateMachine, shortest_paths, transition_cover

    TestMyFlow = FlowStateMachine(flow).TestCase                       # pure FSM, fast
    TestMyFlowLive = FlowStateMachine(flow, mode="session").TestCase   # real AgentSession

See docs/testing.md. The pytest plugin (``handoff.testing.pytest_plugin``, installed
as a ``pytest11`` entry point) adds fixtures and ``--handoff-coverage``.
"""

from .coverage import CoverageObserver, FlowCoverage
from .driver import FlowDriver
from .machine import FlowMachineBase, FlowStateMachine
from .oracle import Expectation, expect, violations
from .paths import Path, Paths, Step, shortest_paths, transition_cover
from .profiles import load_profile, register_profiles
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
    UNDECLARED,
    Attempt,
    arguments,
    attempts,
    context_changes,
    contexts,
    for_type,
    triggers,
    walks,
)

__all__ = [
    "UNDECLARED",
    "Attempt",
    "CoverageObserver",
    "Expectation",
    "FlowCoverage",
    "FlowDriver",
    "FlowMachineBase",
    "FlowStateMachine",
    "Path",
    "Paths",
    "Policy",
    "Reply",
    "ReplyLike",
    "ScriptExhausted",
    "ScriptedLLM",
    "Step",
    "ToolCall",
    "Turn",
    "arguments",
    "attempts",
    "call",
    "context_changes",
    "contexts",
    "expect",
    "fail",
    "for_type",
    "load_profile",
    "per_state",
    "register_profiles",
    "replay",
    "shortest_paths",
    "transition_cover",
    "triggers",
    "violations",
    "walks",
]
