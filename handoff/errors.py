"""The exceptions handoff raises, one hierarchy under :class:`FlowError`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from livekit.agents import ToolError

if TYPE_CHECKING:
    from .validate import Finding


class FlowError(Exception):
    """Base class of every error handoff raises on purpose."""


class FlowDefinitionError(FlowError):
    """A Flow is malformed; raised when the Flow is built, never during a call.

    ``findings`` holds every problem found, not only the first, so one run of the
    constructor (or of ``handoff check``) reports them all.
    """

    def __init__(self, flow_name: str, findings: list[Finding]) -> None:
        self.flow_name = flow_name
        self.findings = findings
        lines = "\n".join(f"  - {f}" for f in findings)
        super().__init__(f"flow {flow_name!r} is invalid:\n{lines}")


class UnknownTierError(FlowError):
    """A State names a tier that no configuration declares."""


class PluginError(FlowError):
    """A tier's LLM or a voice's STT/TTS cannot be made from its configuration (the
    provider's plugin is not installed, or an option it does not take); the message says
    how to fix it."""


class TransitionRefused(ToolError, FlowError):
    """A transition was not taken; ``message`` is written for the LLM that asked.

    Raise it from a transition body to refuse a move the guard could not judge
    (for instance when the arguments are out of range). Nothing the body changed
    in the context survives a refusal.
    """

    def __init__(self, message: str, *, trigger: str = "", kind: str = "refused") -> None:
        super().__init__(message)
        self.trigger = trigger
        self.kind = kind
