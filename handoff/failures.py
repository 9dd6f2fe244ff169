"""When a call goes wrong: consecutive failures and loops lead to the error transition.

A *failure* is something the caller would notice as the agent not working: a tool
or transition body that raised or timed out, an LLM request that failed after its
tier's fallbacks, an ``on_enter`` that raised. A refused transition is not a failure:
the flow is working as declared. After ``max_failures`` consecutive failures, or
when the flow loops (more than ``max_transitions`` moves in one call, or the same
two states back and forth ``max_ping_pong`` times), the run takes the flow's error
transition (per state if the State sets ``error_transition``) once, and the new
agent is told why so it can say so to the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .run import TransitionRecord


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """The limits of a Flow; ``error_transition`` names a declared trigger (or None)."""

    error_transition: str | None = None
    max_failures: int = 2
    max_transitions: int = 50
    max_ping_pong: int = 3

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.max_transitions < 1 or self.max_ping_pong < 1:
            raise ValueError("failure limits must be at least 1")


def loop_reason(log: Sequence[TransitionRecord], policy: FailurePolicy) -> str | None:
    """Why the log shows a loop the call must not continue, or None."""
    if len(log) > policy.max_transitions:
        return f"the call made more than {policy.max_transitions} transitions"
    span = 2 * policy.max_ping_pong
    if len(log) < span:
        return None
    tail = log[-span:]
    a, b = tail[0].source, tail[0].target
    if a == b:
        return None
    expected = [(a, b), (b, a)] * policy.max_ping_pong
    if [(r.source, r.target) for r in tail] == expected:
        return f"the call went back and forth between {a} and {b} {policy.max_ping_pong} times"
    return None
