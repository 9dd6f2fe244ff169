"""Spans (through LiveKit's tracer, read with the in-memory exporter) and Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from livekit.agents import AgentSession, RunContext
from livekit.agents.telemetry import tracer
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import Field

from examples.callcenter.demo import AGENT_SCRIPT, CALLER
from examples.callcenter.flow import Call
from handoff import Context, Flow, State, transition
from handoff.persistence import Checkpointer, MemoryStore
from handoff.resume import RESUME_SPAN, resume_or_start
from handoff.telemetry import SPAN_NAME, FlowTelemetry, HandoffMetrics, start_metrics_server
from handoff.testing import ScriptedLLM, call

from .ops_support import exported_spans, free_port

SECRET = "ZEBRA-7731"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """LiveKit's tracer pointed at an in-memory exporter, with LiveKit's PII filter on."""
    with exported_spans(allow_pii=False) as exporter:
        yield exporter


def transition_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    found = [s for s in exporter.get_finished_spans() if s.name == SPAN_NAME]
    return sorted(found, key=lambda s: s.start_time or 0)


def ancestors(span: ReadableSpan, exporter: InMemorySpanExporter) -> list[str]:
    by_id = {s.context.span_id: s for s in exporter.get_finished_spans() if s.context}
    names = []
    parent = span.parent
    while parent is not None and parent.span_id in by_id:
        node = by_id[parent.span_id]
        names.append(node.name)
        parent = node.parent
    return names


class CountingStore(MemoryStore):
    """A memory store that counts the checkpoints it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.saves = 0

    async def save(self, checkpoint: Any) -> bool:
        stored = await super().save(checkpoint)
        self.saves += 1
        return stored


async def demo_call(flow: Any, telemetry: FlowTelemetry, context: Call | None = None,
                    checkpointer: Checkpointer | None = None) -> Any:
    checkpointer = checkpointer or Checkpointer(MemoryStore(), metrics=telemetry.metrics)
    async with AgentSession[Call]() as session:
        run = await resume_or_start(
            flow, session, checkpointer=checkpointer,
            call_id="trace-1", context=context, llm=ScriptedLLM(list(AGENT_SCRIPT)),
            telemetry=telemetry, wait_opening=True)
        assert telemetry.metrics.value("handoff_active_flow_runs", flow="callcenter") == 1
        for line in CALLER:
            await session.run(user_input=line)
    return run


async def test_a_span_per_transition_nested_in_livekits_turn(
    flow: Any, metrics: HandoffMetrics, spans: InMemorySpanExporter
) -> None:
    run = await demo_call(flow, FlowTelemetry(metrics).install(flow))
    found = transition_spans(spans)
    summary = [(s.attributes["handoff.from"], s.attributes.get("handoff.to"),
                s.attributes["handoff.trigger"], s.attributes["handoff.outcome"],
                s.attributes["handoff.guard"]) for s in found if s.attributes]
    assert summary == [
        ("Greeter", "Triage", "caller_identified", "taken", "none"),
        ("Triage", "Billing", "billing_question", "refused", "refused"),
        ("Triage", "Billing", "billing_question", "taken", "passed"),
        ("Billing", "Wrapup", "open_refund", "refused", "refused"),
        ("Billing", "Wrapup", "open_refund", "taken", "passed"),
        ("Wrapup", "Escalation", "escalate_to_human", "taken", "none"),
    ]
    assert len([s for s in summary if s[3] == "taken"]) == len(run.log)
    session_span = next(s for s in spans.get_finished_spans() if s.name == "agent_session")
    for span in found:
        assert span.attributes is not None and span.context is not None
        assert span.attributes["handoff.flow"] == "callcenter"
        assert span.attributes["handoff.tier"] == flow.states[span.attributes["handoff.to"]].tier
        # under the LLM's tool call, in its turn, in LiveKit's session trace
        assert ancestors(span, spans)[:2] == ["function_tool", "agent_turn"]
        assert span.context.trace_id == session_span.context.trace_id
        assert span.end_time is not None and span.start_time is not None
        assert span.end_time > span.start_time
    refused = [s for s in found if s.attributes and s.attributes["handoff.outcome"] == "refused"]
    for span in refused:
        assert span.attributes is not None
        assert span.attributes["handoff.refusal.kind"] == "guard"
        assert "refused" in str(span.attributes["handoff.refusal.reason"])
        assert [e.name for e in span.events] == ["refused"]
    assert refused[0].attributes is not None
    assert "not verified" in str(refused[0].attributes["handoff.refusal.reason"])


async def test_metrics_of_one_call(flow: Any, metrics: HandoffMetrics,
                                   spans: InMemorySpanExporter) -> None:
    store = CountingStore()
    checkpointer = Checkpointer(store, metrics=metrics)
    await demo_call(flow, FlowTelemetry(metrics).install(flow), checkpointer=checkpointer)
    assert await checkpointer.flush(5)  # the writer runs off the call's path: let it finish
    value = metrics.value
    for source, target in [("Greeter", "Triage"), ("Triage", "Billing"),
                           ("Billing", "Wrapup"), ("Wrapup", "Escalation")]:
        labels = {"flow": "callcenter", "from_state": source, "to_state": target}
        assert value("handoff_transitions_total", **labels) == 1
        assert value("handoff_duration_seconds_count", **labels) == 1
        assert 0 < value("handoff_duration_seconds_sum", **labels) < 1
        assert value("handoff_time_in_state_seconds_count", flow="callcenter", state=source) == 1
    assert value("handoff_refusals_total", flow="callcenter", trigger="billing_question",
                 reason="guard") == 1
    assert value("handoff_refusals_total", flow="callcenter", trigger="open_refund",
                 reason="guard") == 1
    # the session closed: no active run, and the last state's time was observed
    assert value("handoff_active_flow_runs", flow="callcenter") == 0
    assert value("handoff_time_in_state_seconds_count", flow="callcenter",
                 state="Escalation") == 1
    # how many writes a call makes depends on how its turns fall into the writer's
    # coalescing window (the machine's speed); each one the store took is counted once
    assert value("handoff_checkpoint_writes_total", store="memory") == store.saves >= 1
    ended = await store.load("trace-1")
    assert ended is not None and ended.ended  # the last one: the call is over


# -- errors, and a sensitive value everywhere it could leak ----------------------------------
class Secretive(Context):
    caller: str | None = None
    secret: str | None = Field(default=None, json_schema_extra={"pii": True})


def _check(ctx: Secretive, code: str) -> bool:
    if code == "boom":
        raise RuntimeError("guard exploded")
    return code == ctx.secret


class Ask(State[Secretive]):
    """Asks for the secret."""

    tier: ClassVar[str] = "fast"
    instructions = "Ask for the secret code."

    @transition(to="Open", when=_check,
                refused=lambda c: f"the code is not {c.secret}")  # a careless guard text
    async def unlock(self, ctx: RunContext[Secretive], code: str) -> None:
        """Call with the code the caller gave."""
        ctx.userdata.caller = f"knows {code}"


class Open(State[Secretive]):
    """The secret was given."""

    tier: ClassVar[str] = "fast"
    instructions = "Say it is open."


secretive = Flow("secretive", context=Secretive, initial=Ask, states=[Ask, Open], final=[Open])


async def test_errors_are_span_events_and_sensitive_values_never_leak(
    metrics: HandoffMetrics, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    telemetry = FlowTelemetry(metrics).install(secretive)
    store = MemoryStore()
    checkpointer = Checkpointer(store, metrics=metrics, forget_on=frozenset())
    script = ScriptedLLM([
        "What is the code?",
        call("unlock", code="boom"),
        "Something went wrong, say it again?",
        call("unlock", code="wrong"),
        "That is not it. Again?",
        call("unlock", code=SECRET),
        "It is open.",
    ])
    caplog.set_level(logging.DEBUG)
    for name in ("handoff", "livekit.agents"):  # even if a conftest quietened them
        caplog.set_level(logging.DEBUG, logger=name)
    try:
        async with AgentSession[Secretive]() as session:
            run = await resume_or_start(secretive, session, checkpointer=checkpointer,
                                        call_id="s-1", context=Secretive(secret=SECRET),
                                        llm=script, telemetry=telemetry, wait_opening=True)
            for line in ["boom", "wrong", f"it is {SECRET}"]:
                await session.run(user_input=line)
            assert run.state == "Open" and run.context.caller == f"knows {SECRET}"
            assert await checkpointer.flush(5)
    finally:
        secretive.observers.clear()

    found = transition_spans(spans)
    kinds = [s.attributes.get("handoff.refusal.kind") for s in found if s.attributes]
    assert kinds == ["error", "guard", None]
    error_span = found[0]
    assert [e.name for e in error_span.events] == ["refused", "error"]
    assert error_span.status.status_code is StatusCode.ERROR
    assert found[1].attributes is not None
    assert "[redacted]" in str(found[1].attributes["handoff.refusal.reason"])

    # nowhere: any span attribute or event attribute, any log line, any metric
    for span in spans.get_finished_spans():
        for key, value in (span.attributes or {}).items():
            assert SECRET not in str(value), (span.name, key)
        for event in span.events:
            for key, value in (event.attributes or {}).items():
                assert SECRET not in str(value), (span.name, event.name, key)
        assert SECRET not in span.name
    assert any(r.name.startswith("handoff") for r in caplog.records), "no log to check"
    assert any(r.name.startswith("livekit") for r in caplog.records), "no log to check"
    for record in caplog.records:  # LiveKit's and transitions' logs too, at DEBUG
        assert SECRET not in record.getMessage(), record.name
    assert SECRET not in generate_latest(metrics.registry).decode()
    # and the checkpoint's plain text
    cp = await store.load("s-1")
    assert cp is not None
    plain = [cp.context, cp.log, cp.history]
    assert SECRET not in repr(plain)
    restored = cp.context_data()
    assert restored["secret"] == SECRET and restored["caller"] == f"knows {SECRET}"


def test_metrics_server_serves_the_registry() -> None:
    registry = CollectorRegistry()
    mine = HandoffMetrics(registry)
    mine.transitions.labels("callcenter", "Greeter", "Triage").inc()
    port = free_port()
    server = start_metrics_server(port, addr="127.0.0.1", registry=registry)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert ('handoff_transitions_total{flow="callcenter",from_state="Greeter",'
            'to_state="Triage"} 1.0') in body
    assert "handoff_checkpoint_errors_total" in body


async def test_parallel_calls_and_code_moves_get_their_own_spans(
    flow: Any, metrics: HandoffMetrics, spans: InMemorySpanExporter
) -> None:
    """Two transitions in one LLM turn (one refused as busy), then a move made by code."""
    telemetry = FlowTelemetry(metrics).install(flow)
    script = ScriptedLLM([
        "Hello, who is calling?",
        [call("caller_identified", name="Dana", topic="bill"),
         call("escalate_to_human", reason="impatient")],
        "Thanks Dana, your account number?",
        "Connecting you to an operator.",
        "An operator will be with you.",
    ])
    async with AgentSession[Call]() as session:
        run = await flow.start(session, llm=script, wait_opening=True)
        telemetry.track(run)
        await session.run(user_input="Dana, about my bill, quickly")
        assert run.state == "Triage"
        with tracer.start_as_current_span("supervisor_override") as outer:
            await run.go("escalate_to_human", reason="supervisor")
        assert run.state == "Escalation"
    found = transition_spans(spans)
    summary = [(s.attributes.get("handoff.trigger"), s.attributes.get("handoff.outcome"),
                s.attributes.get("handoff.refusal.kind"), s.attributes.get("handoff.by"))
               for s in found if s.attributes]
    assert sorted(summary[:2], key=str) == sorted([
        ("caller_identified", "taken", None, "llm"),
        ("escalate_to_human", "refused", "busy", None)], key=str)
    assert summary[2] == ("escalate_to_human", "taken", None, "code")
    code_span = found[2]
    assert code_span.parent is not None
    assert code_span.parent.span_id == outer.get_span_context().span_id
    assert metrics.value("handoff_refusals_total", flow="callcenter",
                         trigger="escalate_to_human", reason="busy") == 1


async def test_default_metrics_are_on_the_livekit_workers_metrics_port(flow: Any) -> None:
    """A LiveKit worker with prometheus_port serves the global registry: ours are on it."""
    from livekit.agents.telemetry.http_server import HttpServer

    telemetry = FlowTelemetry().install(flow)  # default: the global registry
    before = telemetry.metrics.value("handoff_transitions_total", flow="callcenter",
                                     from_state="Greeter", to_state="Triage")
    await demo_call(flow, telemetry)
    server = HttpServer("127.0.0.1", 0)  # what the worker starts on prometheus_port
    await server.start()
    try:
        body = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics",
                                           timeout=5).read().decode())
    finally:
        await server.aclose()
    line = next(ln for ln in body.splitlines() if ln.startswith(
        'handoff_transitions_total{flow="callcenter",from_state="Greeter",to_state="Triage"}'))
    assert float(line.rsplit(" ", 1)[1]) == before + 1


async def test_a_resumed_call_says_so_in_its_trace(flow: Any, metrics: HandoffMetrics,
                                                  spans: InMemorySpanExporter) -> None:
    store = MemoryStore()
    first = Checkpointer(store, metrics=metrics, forget_on=frozenset())
    async with AgentSession[Call]() as session:
        await resume_or_start(flow, session, checkpointer=first, call_id="again",
                              llm=ScriptedLLM(list(AGENT_SCRIPT)), wait_opening=True)
        await session.run(user_input=CALLER[0])
        assert await first.flush(5)
    assert not [s for s in spans.get_finished_spans() if s.name == RESUME_SPAN]
    spans.clear()

    async with AgentSession[Call]() as session:
        await resume_or_start(flow, session, checkpointer=Checkpointer(store, metrics=metrics),
                              call_id="again", llm=ScriptedLLM(["Go on."]))
    (resumed,) = [s for s in spans.get_finished_spans() if s.name == RESUME_SPAN]
    session_span = next(s for s in spans.get_finished_spans() if s.name == "agent_session")
    assert resumed.attributes is not None
    assert resumed.attributes["handoff.state"] == "Triage"
    assert resumed.attributes["handoff.resume.outcome"] == "resumed"
    assert resumed.attributes["handoff.resume.transitions"] == 1
    assert ancestors(resumed, spans) == ["agent_session"]
    assert resumed.context is not None and session_span.context is not None
    assert resumed.context.trace_id == session_span.context.trace_id
