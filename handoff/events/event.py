"""Event and CallSummary: what the event log of a call holds, as plain JSON-ready data.

Every event of a call carries the call id, a ``seq`` that grows within the call, the
wall-clock time, its ``kind``, the flow state the call was in, the flow's name and
version, and a small ``data`` dict whose keys depend on the kind (see :data:`KINDS`).
Nothing in an event holds a sensitive Context value: the recorder redacts at the
source, before an event is queued (:mod:`handoff.events.recorder`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

EventKind = Literal[
    "call_started", "transition_requested", "transition", "refusal", "message", "tool_call",
    "context", "error", "latency", "call_ended", "approval",
]
KINDS: dict[str, str] = {
    "call_started": "the call began (or resumed): the whole Context, redacted; resumed; worker; "
                    "for a resumed call, resumption (outcome, checkpoint_version, flow_version, "
                    "migrations, error)",
    "transition_requested": "a move was asked for: trigger, by (llm, code, failover)",
    "transition": "a move taken: source, target, trigger, by, arguments, duration_ms",
    "refusal": "a move not taken: trigger, kind, reason (what the LLM read)",
    "message": "a transcript line: role (user or assistant), text, interrupted",
    "tool_call": "a tool the LLM called: name, arguments, output, is_error, transition",
    "context": "what one step changed in the Context: changed = {field: [before, after]}",
    "error": "something failed: source (a tool name, llm_error…), message",
    "latency": "figures LiveKit reported for a turn: e2e_latency, llm_node_ttft, … (seconds)",
    "call_ended": "the call's session closed: reason, final (ended in a final state)",
    "approval": "a confirm= question: action (tool or trigger), question, outcome (asked, "
                "granted, denied), reason (why denied)",
}
"""Every kind of event, with the keys of its ``data``."""

CallStatus = Literal["live", "ended", "stopped"]
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode
"""``json.dumps`` with these options, without making an encoder for every event."""


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened in a call."""

    call_id: str
    seq: int
    at: float
    kind: str
    state: str
    flow: str
    flow_version: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        """The stored form: what ``to_dict`` gives, encoded without copying ``data`` first
        (the writer's thread encodes every event, holding the GIL the call's loop needs)."""
        return _encode({"call_id": self.call_id, "seq": self.seq, "at": self.at,
                        "kind": self.kind, "state": self.state, "flow": self.flow,
                        "flow_version": self.flow_version, "data": self.data})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        return cls(str(data["call_id"]), int(data["seq"]), float(data["at"]), str(data["kind"]),
                   str(data["state"]), str(data["flow"]), str(data["flow_version"]),
                   dict(data.get("data") or {}))

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        return cls.from_dict(json.loads(text))


@dataclass(slots=True)
class CallSummary:
    """What a store keeps about a call besides its events (for the list of calls).

    ``seen_at`` is the last time the call's writer wrote or sent a heartbeat; a call
    that has not ended and whose writer has been silent longer than ``stale_after``
    is ``stopped``: its writer died (or lost the store), and its log ends at
    ``last_seq``.
    """

    call_id: str
    flow: str
    flow_version: str
    state: str
    started_at: float
    updated_at: float
    seen_at: float
    last_seq: int
    events: int
    ended: bool = False
    end_reason: str | None = None
    writer: str = ""

    def status(self, now: float, stale_after: float) -> CallStatus:
        if self.ended:
            return "ended"
        return "live" if now - self.seen_at <= stale_after else "stopped"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallSummary:
        return cls(
            call_id=str(data["call_id"]), flow=str(data["flow"]),
            flow_version=str(data["flow_version"]), state=str(data["state"]),
            started_at=float(data["started_at"]), updated_at=float(data["updated_at"]),
            seen_at=float(data["seen_at"]), last_seq=int(data["last_seq"]),
            events=int(data["events"]), ended=bool(int(data.get("ended") or 0)),
            end_reason=data.get("end_reason") or None, writer=str(data.get("writer") or ""),
        )


def summarise(batch: Iterable[Event], now: float, writer: str) -> dict[str, CallSummary]:
    """Per call in ``batch``: the summary fields this batch sets (events counts the batch).

    A store merges it into what it has: ``started_at`` and ``flow`` only when the call is
    new, ``events`` added, everything else replaced.
    """
    out: dict[str, CallSummary] = {}
    for event in batch:
        current = out.get(event.call_id)
        if current is None:
            current = out[event.call_id] = CallSummary(
                event.call_id, event.flow, event.flow_version, event.state, event.at, event.at,
                now, event.seq, 0, writer=writer)
        current.state = event.state
        current.flow_version = event.flow_version
        current.updated_at = event.at
        current.last_seq = max(current.last_seq, event.seq)
        current.events += 1
        if event.kind == "call_ended":
            current.ended = True
            current.end_reason = str(event.data.get("reason") or "") or None
        elif event.kind == "call_started":  # a resumed call is live again
            current.ended = False
            current.end_reason = None
    return out
