"""The providers of a run's agents: which LLM a tier means for this call, and warming
every state's LLM and voice when the call starts.

A run's (:class:`~handoff.run.FlowRun`) ``llm_for`` and ``prewarm`` are these, over its
flow's tiers and its own LLM override (``flow.new_run(llm=...)``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from livekit.agents import llm, stt, tts

from .realtime import Model
from .state import State
from .tiers import Tiers

logger = logging.getLogger("handoff")


def llm_for(tiers: Tiers, override: Model | Mapping[str, Model] | None, tier: str) -> Model:
    """The model of ``tier`` for a run: its override (``new_run(llm=...)``: one model for
    every tier, or one per tier name with ``"*"`` for the others) if that names one, else
    the tier table's."""
    if override is None:
        return tiers.llm(tier)
    if isinstance(override, llm.LLM | llm.RealtimeModel):
        return override
    if tier in override:
        return override[tier]
    if "*" in override:
        return override["*"]
    return tiers.llm(tier)


def prewarm(flow_name: str, states: Iterable[type[State[Any]]], llm_for: Callable[[str], Model],
            options_for: Callable[[type[State[Any]]], dict[str, Any]]) -> None:
    """Warm the providers of every state now, not at its first handoff.

    LiveKit prewarms an agent's LLM, STT and TTS when its activity starts, which for a
    handoff is the moment the caller is waiting. The flow's models are made once per
    process (tiers, voices), so warming them all when the call starts costs one
    connection each (LiveKit calls the same ``prewarm()`` at every activity start, so
    providers already expect repeated calls).

    Best-effort: a model or voice that cannot be made here (a tier whose key is
    missing) never ends the call. It is logged once per call, and a move into a
    state that needs it is refused and counted when it is asked for
    (:meth:`Move.handoff <handoff.move.Move.handoff>`), so the call goes on where it is.
    """
    unready: dict[str, list[str]] = {}  # what failed → the states that need it
    for cls in states:
        try:
            model = llm_for(cls.tier)  # made: a realtime model has nothing to warm
            if isinstance(model, llm.LLM):
                model.prewarm()
        except Exception as exc:
            unready.setdefault(f"tier {cls.tier!r} cannot be used ({exc})", []).append(cls.name)
        try:
            for provider in options_for(cls).values():
                if isinstance(provider, stt.STT | tts.TTS):
                    provider.prewarm()
        except Exception as exc:
            unready.setdefault(f"the voice of {cls.name} cannot be used ({exc})",
                               []).append(cls.name)
    for reason, names in unready.items():
        logger.warning("flow %s: %s; a move into %s will be refused until it can",
                       flow_name, reason, ", ".join(names))
