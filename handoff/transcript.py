"""Human-readable lines for what happened in a turn: messages, tool calls, transitions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from livekit.agents import (
    AgentHandoffEvent,
    ChatMessageEvent,
    FunctionCallEvent,
    FunctionCallOutputEvent,
    RunResult,
)

from .redaction import Redactor
from .run import FlowRun


class TranscriptPrinter:
    """Turns RunResults of one flow run into transcript lines, each transition once."""

    def __init__(self, run: FlowRun[Any]) -> None:
        self.run = run
        self._shown_transitions = 0
        self._shown_messages: set[str] = set()

    def lines(self, result: RunResult[Any]) -> Iterator[str]:
        for event in result.events:
            if isinstance(event, ChatMessageEvent) and event.item.role == "assistant":
                self._shown_messages.add(event.item.id)
                yield f"  agent: {event.item.text_content}"
            elif isinstance(event, FunctionCallEvent):
                yield f"    · {event.item.name}({event.item.arguments})"
            elif isinstance(event, FunctionCallOutputEvent):
                tag = "✗" if event.item.is_error else "→"
                yield f"      {tag} {event.item.output}"
            elif isinstance(event, AgentHandoffEvent):
                yield from self._new_transitions()
        yield from self._new_transitions()

    def after(self, history: list[Any]) -> Iterator[str]:
        """What was said and taken after a turn's RunResult ended (by code still
        finishing, such as a tool resuming after a LiveKit task): ``history`` is the
        session's items added since the turn began; messages shown before are skipped
        (a task's messages come back into the history when it completes)."""
        for item in history:
            if (item.type == "message" and item.role == "assistant"
                    and item.id not in self._shown_messages):
                self._shown_messages.add(item.id)
                yield from self._new_transitions()
                yield f"  agent: {item.text_content}"
        yield from self._new_transitions()

    def _new_transitions(self) -> Iterator[str]:
        flow = self.run.flow
        for record in self.run.log[self._shown_transitions :]:
            tier = flow.states[record.target].tier
            args = f" {record.arguments}" if record.arguments else ""
            if record.result is not None:  # a side trip's result
                args += f" ⮐ {json.dumps(Redactor(self.run.context).value(record.result))}"
            yield (
                f"  ══ {record.source} → {record.target} by {record.trigger}{args}"
                f"  [tier {tier}: {flow.tiers.describe(tier)}]"
            )
            self._shown_transitions += 1
