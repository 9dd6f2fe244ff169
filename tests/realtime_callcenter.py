"""The call centre (examples/callcenter/flow.py) with every tier a realtime (speech-to-speech)
tier: the same states, transitions and guards; each tier of the project's table declared
``kind = "realtime"``, so the toolkit plays each state with the ScriptedRealtimeModel."""

from __future__ import annotations

from dataclasses import replace

from examples.callcenter import flow as callcenter
from examples.callcenter.flow import Billing, Call, Escalation, Greeter, Triage, Wrapup
from handoff import Flow, State
from handoff.tiers import Tiers

REALTIME_TIERS = Tiers({name: replace(cfg, kind="realtime")
                        for name, cfg in callcenter.tiers.configs.items()},
                       source="the call centre's tiers, each a realtime tier")


def realtime_callcenter(
    *, triage: type[State[Call]] = Triage, billing: type[State[Call]] = Billing
) -> Flow[Call]:
    """The call centre on realtime tiers (with one state swapped for a variant)."""
    return Flow(callcenter.name, context=Call, initial=Greeter,
                states=[Greeter, triage, billing, Wrapup, Escalation],
                final=[Wrapup, Escalation], global_transitions=callcenter.global_transitions,
                resume_fallback=Triage, tiers=REALTIME_TIERS)


flow = realtime_callcenter()
