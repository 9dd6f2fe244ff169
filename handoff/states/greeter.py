"""Greeter: answers the call and learns who is calling and why."""

from __future__ import annotations

from typing import ClassVar

from livekit.agents import RunContext

from ..state import State
from ..transition import transition
from .call_context import CallContext


class Greeter(State[CallContext]):
    """Greets the caller and learns their name and reason for calling."""

    tier: ClassVar[str] = "fast"
    history: ClassVar[str] = "none"
    instructions = (
        "You answer phone calls. Greet the caller warmly in one short sentence, ask their "
        "name and what they are calling about. Keep every reply to one or two sentences."
    )

    @transition(to="Triage")
    async def caller_identified(self, ctx: RunContext[CallContext], name: str, topic: str) -> None:
        """Call once the caller has told you their name and, briefly, why they are calling.

        Args:
            name: the caller's name as they said it.
            topic: a few words on why they are calling (e.g. "a charge on my bill").
        """
        ctx.userdata.caller_name = name.strip()
        ctx.userdata.topic = topic.strip()
