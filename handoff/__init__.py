"""handoff: multi-agent voice AI on LiveKit Agents, as a finite state machine.

    from handoff import Context, Flow, State, transition
"""

from livekit.agents import RunContext, function_tool

from .context import Context
from .errors import (
    FlowDefinitionError,
    FlowError,
    MigrationError,
    TransitionRefused,
    UnknownTierError,
)
from .flow import Flow
from .graph import Edge
from .history import HistoryPolicy
from .migrations import Migration, migration
from .records import FlowObserver, Refusal, TransitionRecord
from .redaction import install_log_scrubbing
from .run import FlowRun
from .state import State
from .tiers import TierConfig, Tiers
from .transition import RETURN, TransitionDef, transition

install_log_scrubbing()  # no sensitive value reaches a log record of this process

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
    "Migration",
    "MigrationError",
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
    "migration",
    "transition",
]
