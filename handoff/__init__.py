"""handoff: multi-agent voice AI on LiveKit Agents, as a finite state machine.

    from handoff import Context, Flow, State, transition
"""

from livekit.agents import RunContext, function_tool

from .context import Context
from .errors import FlowDefinitionError, FlowError, TransitionRefused, UnknownTierError
from .flow import Edge, Flow
from .history import HistoryPolicy
from .run import FlowObserver, FlowRun, Refusal, TransitionRecord
from .state import RETURN, State, TransitionDef, transition
from .tiers import TierConfig, Tiers

__all__ = [
    "RETURN",
    "Context",
    "Edge",
    "Flow",
    "FlowDefinitionError",
    "FlowError",
    "FlowObserver",
    "FlowRun",
    "HistoryPolicy",
    "Refusal",
    "RunContext",
    "State",
    "TierConfig",
    "Tiers",
    "TransitionDef",
    "TransitionRecord",
    "TransitionRefused",
    "UnknownTierError",
    "function_tool",
    "transition",
]
