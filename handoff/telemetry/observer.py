"""FlowTelemetry: a span per transition attempt and the flow metrics, as a flow observer.

Spans go through LiveKit's own tracer (``livekit.agents.telemetry.tracer``, see
:func:`handoff._livekit.start_span`), so they land on the provider LiveKit exports to
(``telemetry.set_tracer_provider``) and nest in LiveKit's trace of the session::

    agent_session
      └ agent_turn … llm_node
          └ function_tool            (LiveKit: the LLM called billing_question)
              └ handoff.transition   (ours: Triage → Billing, guard passed, 3 ms)

The span starts when the move is asked for (``on_transition_requested``, in the tool
call's context) and ends when the new agent is active (``on_transition``) or the move
is refused (``on_refusal``: a ``refused`` event, and an ``error`` event with error
status when a guard or body raised). Attribute values never carry a sensitive
Context value: free text is scrubbed (:mod:`handoff.redaction`) and transition
arguments go under ``handoff.pii.arguments``, which LiveKit's PII filter drops when
the provider is set with ``allow_pii=False``.
"""

from __future__ import annotations

import json
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from prometheus_client import Counter, Histogram

from .._livekit import start_span
from ..redaction import Redactor
from .metrics import HandoffMetrics, default_metrics

if TYPE_CHECKING:
    from ..flow import Flow
    from ..records import Refusal, TransitionRecord
    from ..run import FlowRun

SPAN_NAME = "handoff.transition"


@dataclass(slots=True)
class _Request:
    trigger: str
    source: str
    by: str
    started: float  # perf_counter
    started_ns: int  # wall clock, for the span
    parent: otel_context.Context


@dataclass(frozen=True, slots=True)
class _MoveMetrics:
    """The labelled metrics a move from ``source`` to ``target`` updates."""

    transitions: Counter
    duration: Histogram
    time_in_source: Histogram


@dataclass(slots=True)
class _RunState:
    entered: float | None = None  # perf_counter when the current state was entered
    active: bool = False
    open: dict[str, list[_Request]] = field(default_factory=dict)


class FlowTelemetry:
    """Spans and Prometheus metrics for every run of the flows it is installed on.

    ``FlowTelemetry().install(flow)`` once; runs started with
    :func:`handoff.resume.resume_or_start` are also ``track``-ed (active runs gauge,
    time in the first state). Cheap and synchronous: no I/O on the call's path.
    """

    def __init__(self, metrics: HandoffMetrics | None = None) -> None:
        self.metrics = metrics if metrics is not None else default_metrics()
        self._runs: weakref.WeakKeyDictionary[FlowRun[Any], _RunState] = (
            weakref.WeakKeyDictionary()
        )
        self._moves: dict[tuple[str, str, str], _MoveMetrics] = {}
        self._taken_attributes: dict[tuple[Flow[Any], str, str, str], dict[str, Any]] = {}

    def _move_metrics(self, flow: str, source: str, target: str) -> _MoveMetrics:
        """The labelled metrics of one move, looked up once (prometheus-client's
        ``labels()`` takes a lock and checks the labels on every call). Bounded: the
        labels are names from the flow definition."""
        key = (flow, source, target)
        found = self._moves.get(key)
        if found is None:
            m = self.metrics
            found = self._moves[key] = _MoveMetrics(
                m.transitions.labels(flow, source, target),
                m.handoff_duration.labels(flow, source, target),
                m.time_in_state.labels(flow, source))
        return found

    def _taken(self, flow: Flow[Any], source: str, trigger: str, target: str) -> dict[str, Any]:
        """The span attributes of a move taken that depend on the flow's definition only,
        made once per move (bounded like the metrics: names from the definition)."""
        key = (flow, source, trigger, target)
        found = self._taken_attributes.get(key)
        if found is None:
            edge = flow.triggers_from(source).get(trigger)
            found = self._taken_attributes[key] = {
                "handoff.flow": flow.name,
                "handoff.flow_version": flow.version,
                "handoff.from": source,
                "handoff.trigger": trigger,
                "handoff.to": target,
                "handoff.tier": flow.states[target].tier,
                "handoff.guard": ("passed" if edge is not None and edge.transition.when is not None
                                  else "none"),
                "handoff.outcome": "taken",
            }
        return found

    def install(self, flow: Flow[Any]) -> FlowTelemetry:
        if self not in flow.observers:
            flow.observers.append(self)
        return self

    def _state(self, run: FlowRun[Any]) -> _RunState:
        st = self._runs.get(run)
        if st is None:
            st = self._runs[run] = _RunState()
        return st

    # -- run lifetime --------------------------------------------------------------
    def track(self, run: FlowRun[Any]) -> None:
        """Count ``run`` as active until its session closes; time its current state."""
        st = self._state(run)
        if st.active:
            return
        st.active = True
        st.entered = time.perf_counter()
        self.metrics.active_runs.labels(run.flow.name).inc()
        if run.attached:
            run.listen("close", lambda _ev: self.untrack(run))

    def untrack(self, run: FlowRun[Any]) -> None:
        st = self._runs.get(run)
        if st is None or not st.active:
            return
        st.active = False
        self.metrics.active_runs.labels(run.flow.name).dec()
        if st.entered is not None:
            self.metrics.time_in_state.labels(run.flow.name, run.state).observe(
                time.perf_counter() - st.entered)
            st.entered = None

    # -- observer hooks --------------------------------------------------------------
    def on_transition_requested(self, run: FlowRun[Any], trigger: str, by: str) -> None:
        request = _Request(trigger, run.state, by, time.perf_counter(), time.time_ns(),
                           otel_context.get_current())
        self._state(run).open.setdefault(trigger, []).append(request)

    def on_transition(self, run: FlowRun[Any], record: TransitionRecord) -> None:
        st = self._state(run)
        now = time.perf_counter()
        request = self._pop(st, record.trigger)
        metrics = self._move_metrics(run.flow.name, record.source, record.target)
        metrics.transitions.inc()
        if request is not None:
            metrics.duration.observe(now - request.started)
        if st.entered is not None:
            metrics.time_in_source.observe(now - st.entered)
        st.entered = now

        attributes = {**self._taken(run.flow, record.source, record.trigger, record.target),
                      "handoff.by": record.by}
        if record.arguments:
            attributes["handoff.argument_names"] = sorted(record.arguments)
            attributes["handoff.pii.arguments"] = json.dumps(
                Redactor(run.context).value(record.arguments), default=str)
        span = self._start(request, attributes)
        span.end()

    def on_refusal(self, run: FlowRun[Any], refusal: Refusal) -> None:
        st = self._state(run)
        request = self._pop(st, refusal.trigger)
        self.metrics.refusals.labels(run.flow.name, refusal.trigger, refusal.kind).inc()
        edge = run.flow.triggers_from(refusal.state).get(refusal.trigger)
        reason = Redactor(run.context).text(refusal.reason)
        guard = {"guard": "refused", "error": "error"}.get(
            refusal.kind,
            "passed" if edge is not None and edge.transition.when is not None else "none")
        attributes: dict[str, Any] = {
            **self._base(run, refusal.trigger, refusal.state),
            "handoff.guard": guard,
            "handoff.outcome": "refused",
            "handoff.refusal.kind": refusal.kind,
            "handoff.refusal.reason": reason,
        }
        target = self._target(run, edge)
        if target is not None:
            attributes["handoff.to"] = target
            attributes["handoff.tier"] = run.flow.states[target].tier
        span = self._start(request, attributes)
        span.add_event("refused", {"handoff.refusal.kind": refusal.kind,
                                   "handoff.refusal.reason": reason})
        if refusal.kind == "error":
            span.add_event("error", {"handoff.refusal.reason": reason})
            span.set_status(Status(StatusCode.ERROR, "transition failed"))
        span.end()

    # -- helpers -----------------------------------------------------------------------
    @staticmethod
    def _base(run: FlowRun[Any], trigger: str, source: str) -> dict[str, Any]:
        return {
            "handoff.flow": run.flow.name,
            "handoff.flow_version": run.flow.version,
            "handoff.from": source,
            "handoff.trigger": trigger,
        }

    @staticmethod
    def _target(run: FlowRun[Any], edge: Any) -> str | None:
        """Where a refused move would have gone (a return goes to the top of the stack)."""
        if edge is None:
            return None
        if edge.is_return:
            return run.return_stack[-1] if run.return_stack else None
        return str(edge.target) if edge.target in run.flow.states else None

    @staticmethod
    def _pop(st: _RunState, trigger: str) -> _Request | None:
        stack = st.open.get(trigger)
        if not stack:
            return None
        request = stack.pop()
        if not stack:
            del st.open[trigger]
        return request

    @staticmethod
    def _start(request: _Request | None, attributes: dict[str, Any]) -> trace.Span:
        if request is None:  # a move we did not see asked for: a point-in-time span
            return start_span(SPAN_NAME, attributes=attributes)
        return start_span(SPAN_NAME, context=request.parent, attributes=attributes,
                          start_time=request.started_ns)
