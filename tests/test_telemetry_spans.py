"""The span thread: ``handoff.transition`` spans are made off the call's loop, saying what the
loop saw at the move (times, parent, provider, context), in order, and flushes wait for them."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from livekit.agents import AgentSession
from livekit.agents.telemetry import set_tracer_provider, tracer
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from examples.callcenter.demo import AGENT_SCRIPT, CALLER
from examples.callcenter.flow import Call
from handoff.persistence import Checkpointer, MemoryStore
from handoff.resume import resume_or_start
from handoff.telemetry import SPAN_NAME, FlowTelemetry, HandoffMetrics, flush_spans
from handoff.telemetry.otel import flush
from handoff.telemetry.spans import SPANS, SpanThread
from handoff.testing import ScriptedLLM

from .ops_support import exported_spans

MARK: contextvars.ContextVar[str] = contextvars.ContextVar("mark", default="unset")


class Seen(SpanProcessor):
    """Where and in what context each span was started."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str, str]] = []  # span name, thread, MARK

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        self.started.append((span.name, threading.current_thread().name, MARK.get()))


class Held:
    """The span thread, held busy until released (so a test decides when spans are made)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.released_ns = 0
        SPANS.submit(self.release.wait)

    def __enter__(self) -> Held:
        return self

    def __exit__(self, *exc: object) -> None:
        self.released_ns = time.time_ns()
        self.release.set()


@pytest.fixture
def seen() -> Iterator[tuple[Seen, InMemorySpanExporter]]:
    """LiveKit's tracer on an in-memory exporter, with :class:`Seen` before it."""
    with exported_spans(allow_pii=False) as exporter:
        processor = Seen()
        tracer._tracer_provider.add_span_processor(processor)  # type: ignore[attr-defined]
        yield processor, exporter


async def _call(flow: Any, telemetry: FlowTelemetry) -> list[int]:
    """The call-centre demo; the wall clock (ns) after each of the caller's turns."""
    after = []
    async with AgentSession[Call]() as session:
        await resume_or_start(flow, session, checkpointer=Checkpointer(MemoryStore()),
                              call_id="spans-1", llm=ScriptedLLM(list(AGENT_SCRIPT)),
                              telemetry=telemetry, wait_opening=True)
        for line in CALLER:
            await session.run(user_input=line)
            after.append(time.time_ns())
    return after


def _moves(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == SPAN_NAME]


async def test_spans_are_made_on_the_span_thread_with_the_times_of_the_moves(
    flow: Any, metrics: HandoffMetrics, seen: tuple[Seen, InMemorySpanExporter]
) -> None:
    processor, exporter = seen
    MARK.set("the call's")
    with Held() as held:  # no span can be made before the call is over
        after = await _call(flow, FlowTelemetry(metrics).install(flow))
        assert not [s for s in processor.started if s[0] == SPAN_NAME]
        assert metrics.value("handoff_transitions_total", flow="callcenter",
                             from_state="Greeter", to_state="Triage") == 1  # metrics: at once
    moves = _moves(exporter)  # flushes the span thread
    assert len(moves) == 6
    ours = [s for s in processor.started if s[0] == SPAN_NAME]
    assert ours == [(SPAN_NAME, SPANS.name, "the call's")] * 6  # off the loop, in its context
    theirs = {s[1] for s in processor.started if s[0] != SPAN_NAME}
    assert threading.current_thread().name in theirs  # LiveKit's spans: on the loop
    for span in moves:  # the times the loop saw, not when the thread got to them
        assert span.start_time is not None and span.end_time is not None
        assert span.start_time < span.end_time <= after[-1] < held.released_ns
        assert all(e.timestamp == span.end_time for e in span.events)
    assert [s.start_time for s in moves] == sorted(s.start_time or 0 for s in moves)  # in order


async def test_a_span_goes_to_the_provider_of_its_move(flow: Any, metrics: HandoffMetrics) -> None:
    with exported_spans(allow_pii=False) as first:
        with Held():
            await _call(flow, FlowTelemetry(metrics).install(flow))
            later = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(later))
            set_tracer_provider(provider)  # replaced before the spans were made
        assert flush_spans(10)
        assert len(_moves(first)) == 6
        assert not _moves(later)
        provider.shutdown()


def test_jobs_run_in_order_in_their_context_and_a_failing_one_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    thread = SpanThread("handoff-spans-test")
    assert thread.flush(0)  # nothing handed over: nothing to wait for
    ran: list[tuple[int, str]] = []

    def job(n: int) -> None:
        if n == 2:
            raise RuntimeError("exporter broke")
        ran.append((n, MARK.get()))

    for n in range(5):
        MARK.set(f"at {n}")
        thread.submit(job, n)
    assert thread.flush(10)
    assert ran == [(0, "at 0"), (1, "at 1"), (3, "at 3"), (4, "at 4")]
    assert "could not be made" in caplog.text and "exporter broke" in caplog.text


def test_a_flush_waits_for_the_spans_handed_over() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        with Held():
            SPANS.submit(lambda: provider.get_tracer("t").start_span("late").end())
            assert not flush_spans(0.05)
            assert not flush(0.05, provider)  # otel's flush waits for them too, bounded
        assert flush(5, provider)
        assert [s.name for s in exporter.get_finished_spans()] == ["late"]
    finally:
        provider.shutdown()


def test_a_forked_child_starts_its_own_thread() -> None:
    thread = SpanThread("handoff-spans-fork")
    thread.submit(lambda: None)
    assert thread.flush(10)
    thread._forked()  # what os.register_at_fork runs in the child
    done = threading.Event()
    thread.submit(done.set)
    assert done.wait(10) and thread.flush(10)
