"""Realtime (speech-to-speech) tiers: what a tier needs to name a LiveKit ``RealtimeModel``,
and what ``check`` knows of LiveKit's rules for them.

A tier is a realtime tier when its config says ``kind = "realtime"`` (the plugin's
``livekit.plugins.<provider>.realtime.RealtimeModel``) or when its ``provider`` is a
``package.module:factory`` that makes a ``RealtimeModel``::

    [tool.handoff.tiers.voice]
    kind = "realtime"
    provider = "openai"
    model = "gpt-realtime"
    [tool.handoff.tiers.voice.options]
    voice = "marin"
    modalities = ["audio"]

A State on a realtime tier is an ordinary LiveKit ``Agent(llm=RealtimeModel)``: LiveKit
hands off between realtime and pipeline agents in both directions, and between two
agents on the same realtime model it reuses the model's session when the provider can
update instructions, tools and chat context mid-session (``mutable_*`` capabilities),
else it closes the session and opens a new one. What LiveKit refuses or ignores on a
realtime agent is reported by :func:`realtime_findings` (part of ``handoff check``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, TypeAlias

from livekit.agents import llm

from .errors import ConfigError, Finding

Model: TypeAlias = llm.LLM | llm.RealtimeModel
"""What a tier names: a pipeline LLM or a realtime (speech-to-speech) model."""

TierKind = Literal["llm", "realtime"]
KINDS: tuple[TierKind, ...] = ("llm", "realtime")

SERVER_TURNS_OFF = ("manual", "vad")
"""State ``turn_mode``s that hand turn-taking to the client, which turns a realtime
model's server-side turn detection off (LiveKit 1.8.9, agent_activity
``_resolve_rt_turn_detection_enabled``)."""


def tier_kind(name: str, value: Any) -> TierKind:
    """The ``kind`` of a tier's config, refused with the accepted values when unknown."""
    if value not in KINDS:
        raise ConfigError(f"tier {name!r}: kind {value!r} is not one of {list(KINDS)}")
    kind: TierKind = value
    return kind


def combine(name: str, chain: Sequence[Model]) -> Model:
    """A tier's model with its fallbacks, through LiveKit's adapter for that kind of model;
    a chain that mixes pipeline and realtime models is refused (LiveKit cannot fall back
    from one to the other)."""
    if len(chain) == 1:
        return chain[0]
    if all(isinstance(m, llm.RealtimeModel) for m in chain):
        return llm.RealtimeModelFallbackAdapter([m for m in chain if isinstance(m, llm.RealtimeModel)])
    if all(isinstance(m, llm.LLM) for m in chain):
        return llm.FallbackAdapter([m for m in chain if isinstance(m, llm.LLM)])
    raise ConfigError(f"tier {name!r} mixes realtime and pipeline models in its fallbacks; "
                      "fall back to tiers of the same kind")


class _Tiers(Protocol):
    def kind_of(self, name: str) -> TierKind: ...

    def __contains__(self, name: object) -> bool: ...


class _Definition(Protocol):
    @property
    def states(self) -> Mapping[str, Any]: ...

    @property
    def tiers(self) -> Any: ...

    @property
    def edges(self) -> Sequence[Any]: ...


def realtime_findings(flow: _Definition) -> list[Finding]:
    """What LiveKit refuses or ignores in a flow whose states use realtime tiers.

    - ``interruptible = False`` while the model detects turns itself: LiveKit raises
      when the agent starts (``allow_interruptions cannot be False``), unless the state's
      ``turn_mode`` hands turn-taking to the client (``manual`` or ``vad``);
    - ``turn_mode = "stt"``: LiveKit ignores it on a realtime model;
    - ``history = "summary"`` into a realtime state: the summary is written by the
      state's model, and a ``RealtimeModel`` has no ``chat()``; the handoff keeps the
      recent messages only.
    """
    tiers = flow.tiers
    realtime = {name for name, cls in flow.states.items()
                if cls.tier in tiers and tiers.kind_of(cls.tier) == "realtime"}
    out: list[Finding] = []
    for name in sorted(realtime):
        cls = flow.states[name]
        if cls.interruptible is False and cls.turn_mode not in SERVER_TURNS_OFF:
            out.append(Finding(
                "error", "realtime-not-interruptible",
                f"interruptible = False on realtime tier {cls.tier!r}: LiveKit refuses "
                "allow_interruptions=False while the model detects turns server-side",
                "set turn_mode = 'vad' or 'manual' (client-side turns), or drop interruptible",
                state=name))
        if cls.turn_mode == "stt":
            out.append(Finding(
                "warning", "realtime-turn-mode",
                f"turn_mode 'stt' is ignored by LiveKit on realtime tier {cls.tier!r}",
                "use 'realtime_llm', 'vad' or 'manual'", state=name))
    summarised = {name for name in realtime if flow.states[name].history.startswith("summary")}
    summarised |= {edge.target for edge in flow.edges if edge.target in realtime
                   and edge.transition.history is not None
                   and edge.transition.history.kind == "summary"}
    for name in sorted(summarised):
        out.append(Finding(
            "warning", "realtime-summary",
            f"history 'summary' into a state on realtime tier {flow.states[name].tier!r}: a "
            "RealtimeModel cannot write the summary, so only the recent messages are kept",
            "use 'last:N' (or 'full') for realtime states", state=name))
    return out
