"""What a run learns from LiveKit's ``function_tools_executed``: the tool calls of a turn
that never reached a tool, and the state's tools that failed.

A name the agent does not offer (the LLM made it up) and a transition call whose
arguments LiveKit's schema rejected (the transition's tool never ran) are refusals
(``invalid``), on the record like any other; a failed tool counts toward the error
transition (:mod:`handoff.failures`). A task's own tools report to the tool awaiting the
task, which counts if it fails.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from .redaction import Redactor
from .refusals import record_refusal
from .semantics import function_tools, offer
from .sensitive_args import scrub_calls

if TYPE_CHECKING:
    from livekit.agents import FunctionToolsExecutedEvent

    from .run import FlowRun  # type-only: the run listens to its session with this


def on_tools_executed(run: FlowRun[Any], event: FunctionToolsExecutedEvent) -> None:
    """Scrub the calls' sensitive values, refuse the calls that reached no tool, and count
    the state's failed tools."""
    calls = event.function_calls
    if run.context.holds_sensitive():
        scrub = Redactor(run.context)
        if values := scrub.values():  # before LiveKit stores them
            scrub_calls(calls, functools.partial(scrub.text, values=values))
    reached: set[str] = run._reached or set()  # only this event's calls are forgotten:
    if reached:  # a task the tool awaits reports first
        run._reached = reached - {c.call_id for c in calls}
    agent, session = run.agent, run._session
    if agent is None or session is None or session.current_agent is not agent:
        return
    state, flow = run.state, run.flow
    offered, triggers = offer(flow, state).names, flow.triggers_from(state)
    names = [c.name for c in calls]
    if offered.issuperset(names) and triggers.keys().isdisjoint(names):
        # the usual turn: every call named one of the state's ordinary tools, which ran
        run.failures.on_tools_executed(event, triggers, offered)
        return
    # what the declaration offers here, and any tool the agent has beyond it (those its
    # __init__ added, or LiveKit's update_tools during the call: the flow cannot know
    # them), read only when a call names something the declaration does not offer
    if not offered.issuperset(names):
        offered = offered | {t.info.name for t in function_tools(agent.tools)}
    for call, output in zip(event.function_calls, event.function_call_outputs, strict=False):
        if call.name not in offered and call.name not in run._tasks.tool_names:
            record_refusal(run, call.name, "invalid",
                           f"'{call.name}' is not a tool of state {run.state}; the transitions "
                           f"available now are: {', '.join(run.available()) or 'none'}.")
        elif (call.name in triggers and call.call_id not in reached
              and output is not None and output.is_error):
            # LiveKit refused the arguments before the transition's tool ran
            record_refusal(run, call.name, "invalid",
                           f"'{call.name}' was called with arguments its schema does not take "
                           f"({output.output}); the flow stays where it is.")
    run.failures.on_tools_executed(event, triggers, offered)
