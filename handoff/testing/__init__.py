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

The scripted LLM, the driver and the coverage observer need only the core install
(``handoff chat --script`` uses them); the generated machines, strategies, paths,
exploration and replay need hypothesis, from the ``testing`` extra: without it, asking
for one of them is a one-line error naming the extra. The pytest plugin loads without
it, so a core install never breaks pytest in an unrelated project.
"""

from __future__ import annotations

from typing import Any

from ..extras import missing
from .answers import answer, answering
from .coverage import CoverageObserver, FlowCoverage
from .driver import FlowDriver, ModelFactory, settle
from .realtime import ScriptedRealtimeModel, ScriptedRealtimeSession, Truncation
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

_TESTING_EXTRA = {"hypothesis", "pytest", "pytest_asyncio"}
"""Top-level packages of the ``testing`` extra."""

_ABSENT: ModuleNotFoundError | None = None
"""Why the parts that need the testing extra are not here (None: they are)."""

try:
    from .explore import Exploration, Move, explore
    from .machine import FlowMachineBase, FlowStateMachine
    from .oracle import checking
    from .paths import FlowPath, FlowPaths, Step, shortest_paths, transition_cover
    from .profiles import load_profile, register_profiles
    from .replaying import replay
    from .strategies import (
        Attempt,
        arguments,
        attempts,
        context_changes,
        contexts,
        triggers,
        walks,
    )
except ModuleNotFoundError as exc:  # a core install: no hypothesis
    if exc.name not in _TESTING_EXTRA:
        raise
    _ABSENT = exc


def __getattr__(name: str) -> Any:
    """A toolkit name that needs the testing extra, asked for without it: one line saying so."""
    if _ABSENT is not None and name in __all__:
        raise missing(f"handoff.testing.{name}", "testing", _ABSENT) from _ABSENT
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "ModelFactory",
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
    "answer",
    "answering",
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
