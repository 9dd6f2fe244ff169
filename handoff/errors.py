"""Every exception handoff raises on purpose, one hierarchy under :class:`FlowError`,
and the typed vocabulary they carry (:class:`Finding`, :data:`RefusalKind`).

A leaf module: it imports nothing from handoff, so any module may import it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from livekit.agents import ToolError

Severity = Literal["error", "warning"]

RefusalKind = Literal["invalid", "guard", "busy", "body", "error", "interrupted", "denied"]
"""Why a transition was not taken: not declared from this state, or called by the LLM with
arguments its tool schema rejects (``invalid``), its guard
said no (``guard``), another transition is under way this turn (``busy``), its body
refused (``body``), its guard or body raised or timed out (``error``), or the caller
interrupted the turn (``interrupted``), or the caller did not approve it (``denied``,
``confirm=``). Only ``error`` counts as a failure."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem of a Flow's definition: where it is, what is wrong, how to fix it."""

    severity: Severity
    code: str
    message: str
    hint: str
    state: str | None = None
    trigger: str | None = None

    def __str__(self) -> str:
        where = self.state or "flow"
        if self.trigger:
            where += f".{self.trigger}"
        return f"{self.severity} [{self.code}] {where}: {self.message} — fix: {self.hint}"

    def to_dict(self) -> dict[str, str | None]:
        """The finding as JSON-ready data (``handoff check --format json``)."""
        return asdict(self)


class FlowError(Exception):
    """Base class of every error handoff raises on purpose."""


class FlowDefinitionError(FlowError, TypeError):
    """A Flow (or a State or ``@transition`` of it) is malformed; raised when it is
    defined or built, never during a call.

    ``findings`` holds every problem found, not only the first, so one run of the
    constructor (or of ``handoff check``) reports them all. ``flow_name`` is None for a
    problem found before any Flow exists (a bad ``@transition`` or State class body).
    It is also a ``TypeError``, as Python's own errors for a malformed definition are.
    """

    def __init__(self, flow_name: str | None, findings: Sequence[Finding]) -> None:
        self.flow_name = flow_name
        self.findings = list(findings)
        lines = "\n".join(f"  - {f}" for f in self.findings)
        what = f"flow {flow_name!r} is invalid" if flow_name is not None else "invalid definition"
        super().__init__(f"{what}:\n{lines}")


class ConfigError(FlowError, ValueError):
    """A configuration value is wrong (``[tool.handoff.*]`` in pyproject.toml, handoff.toml,
    a ``HANDOFF_*`` environment variable); the message says where and how to fix it.
    Also a ``ValueError``, as Python's own errors for a bad value are."""


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

    def __init__(self, message: str, *, trigger: str = "", kind: RefusalKind = "body") -> None:
        super().__init__(message)
        self.trigger = trigger
        self.kind: RefusalKind = kind


class TransitionCallError(FlowError, TypeError):
    """``run.go()`` was called with arguments its transition does not take: a name it has
    no parameter for, a required one missing, or a value its type rejects (checked with
    the schema of the transition's tool, as the LLM's calls are). A bug in the calling
    code: raised to it, nothing changes, nothing is recorded, and it never counts toward
    the error transition. Also a ``TypeError``, as Python's own error for a bad call is.
    The message names the parameters, never the values given."""


class FlowLoadError(FlowError):
    """A flow reference could not be loaded: bad syntax, import error, no such name, not a Flow."""


class CheckpointFormatError(FlowError):
    """A stored checkpoint this version of handoff cannot read."""


class MigrationError(FlowError):
    """A checkpoint could not be brought to the flow's version: a migration raised, or its
    result does not fit the flow. ``migration`` names the step (empty: the result)."""

    def __init__(self, message: str, *, migration: str = "") -> None:
        super().__init__(message)
        self.migration = migration


class GraphvizMissing(FlowError):
    """SVG or PNG was asked for, but Graphviz's ``dot`` program is not on the PATH."""


class NoPhoneLine(ToolError, FlowError):
    """The session has no LiveKit room or no caller on a SIP line: a call-control tool cannot act."""


class SecretError(FlowError):
    """A secret could not be resolved. The message names secrets, never values."""


class MissingSecretError(SecretError):
    """Required secrets are absent from every provider of the chain."""

    def __init__(self, missing: Sequence[str], searched: Sequence[str],
                 failures: Sequence[str] = (), needed_by: Mapping[str, str] | None = None) -> None:
        self.missing = list(missing)
        self.searched = list(searched)
        self.failures = list(failures)
        self.needed_by = dict(needed_by or {})  # name -> what needs it, said in the message
        names = ", ".join(f"{n} (for {self.needed_by[n]})" if n in self.needed_by else n
                          for n in self.missing)
        where = ", ".join(self.searched) or "no providers"
        text = f"missing secret{'s' if len(self.missing) > 1 else ''}: {names} (searched {where})"
        if self.failures:
            text += "; provider errors: " + "; ".join(self.failures)
        super().__init__(text)


class SecretProviderError(SecretError):
    """A provider could not be asked (Vault unreachable, permission denied…)."""


class ScriptExhausted(FlowError, AssertionError):
    """A scripted model (:class:`handoff.testing.ScriptedLLM`) had no reply left for a
    request. An AssertionError too, so a test that runs past its script fails as one; here
    so that the console can tell a script's end without importing the testing toolkit."""
