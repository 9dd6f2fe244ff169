"""handoff: multi-agent voice AI on LiveKit Agents, as a finite state machine.

    from handoff import Context, Flow, State, transition

What a flow's author uses is here; the parts behind it live in their modules
(``handoff.transition.TransitionDef``, ``handoff.graph.Edge``, ``handoff.history``,
``handoff.persistence``, ``handoff.telemetry``, ``handoff.testing``…).
"""

from livekit.agents import RunContext, function_tool

from .approval import Approval, confirm
from .context import Context
from .errors import (
    Finding,
    FlowDefinitionError,
    FlowError,
    MigrationError,
    TransitionCallError,
    TransitionRefused,
    UnknownTierError,
)
from .flow import Flow
from .migrations import Migration, migration
from .records import FlowObserver, Refusal, Returned, TransitionRecord
from .redaction import install_log_scrubbing
from .resume import resume_or_start
from .run import FlowRun
from .state import State
from .tiers import TierConfig, Tiers
from .transition import RETURN, Chosen, transition
from .validate import check

install_log_scrubbing()  # no sensitive value reaches a log record of this process

__all__ = [
    "RETURN",
    "Approval",
    "Chosen",
    "Context",
    "Finding",
    "Flow",
    "FlowDefinitionError",
    "FlowError",
    "FlowObserver",
    "FlowRun",
    "Migration",
    "MigrationError",
    "Refusal",
    "Returned",
    "RunContext",
    "State",
    "TierConfig",
    "Tiers",
    "TransitionCallError",
    "TransitionRecord",
    "TransitionRefused",
    "UnknownTierError",
    "check",
    "confirm",
    "function_tool",
    "migration",
    "resume_or_start",
    "transition",
]
