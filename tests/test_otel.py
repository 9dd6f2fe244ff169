"""Tracing configured the OpenTelemetry way, from ``OTEL_*`` variables, to a real OTLP receiver.

Each test runs an OTLP receiver on loopback — OTLP/HTTP (an aiohttp app taking
``POST /v1/traces``) or OTLP/gRPC (a grpc server with the collector's TraceService) —
points the standard variables at it, calls :func:`configure_from_env` as ``handoff run``
and every job process do, talks through a real AgentSession (the README's hello flow,
scripted LLM), and reads back what the exporter sent: the ``handoff.transition`` span,
its parent (LiveKit's ``function_tool`` span for the LLM's tool call) and the service
name from ``OTEL_SERVICE_NAME``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from aiohttp import web
from livekit.agents.telemetry import tracer
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from examples.readme.hello import flow
from handoff.errors import ConfigError
from handoff.telemetry import SPAN_NAME, FlowTelemetry
from handoff.telemetry.otel import (
    OtelSettings,
    configure_from_env,
    exporter_kind,
    flush,
    otlp_protocol,
    shutdown,
    start_flush,
)
from handoff.testing import ScriptedLLM, call
from handoff.worker import end_call


class Received:
    """Spans an OTLP receiver got, flattened: name, ids, parent, attributes, resource."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self.lock:
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value
                            for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append({
                            "name": span.name, "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(), "parent": span.parent_span_id.hex(),
                            "attributes": {a.key: a.value.string_value for a in span.attributes},
                            "resource": resource,
                        })


@pytest.fixture
def restore_tracer() -> Iterator[None]:
    previous = tracer._tracer_provider
    yield
    tracer.set_provider(previous)


@pytest.fixture
async def http_receiver() -> AsyncIterator[tuple[str, Received]]:
    received = Received()

    async def traces(request: web.Request) -> web.Response:
        message = trace_service_pb2.ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        received.add(message)
        return web.Response(body=trace_service_pb2.ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    app = web.Application()
    app.add_routes([web.post("/v1/traces", traces)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", received
    await runner.cleanup()


@pytest.fixture
def grpc_receiver() -> Iterator[tuple[str, Received]]:
    received = Received()

    class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            received.add(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}", received
    server.stop(grace=None)


async def _call_and_export(monkeypatch: pytest.MonkeyPatch, endpoint: str, protocol: str) -> Any:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "support-line")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    provider = configure_from_env()
    assert provider is not None
    try:
        await _a_traced_call()
        assert await asyncio.to_thread(provider.force_flush, 10_000)
    finally:
        await asyncio.to_thread(provider.shutdown)
    return provider


async def _a_traced_call() -> Any:
    """The hello flow's call with its one handoff, traced (FlowTelemetry); the run."""
    telemetry = FlowTelemetry().install(flow)
    try:
        llm = ScriptedLLM(["Hi! Who's calling?", call("caller_identified", name="Ann"),
                           "How can I help, Ann?"])
        async with flow.session(llm=llm) as run:
            await run.session.run(user_input="I'm Ann")
            assert run.state == "Helper"
        return run
    finally:
        flow.observers.remove(telemetry)


def _check_transition_trace(received: Received) -> None:
    [move] = [s for s in received.spans if s.get("name") == SPAN_NAME]
    assert move["attributes"]["handoff.from"] == "Greeter"
    assert move["attributes"]["handoff.to"] == "Helper"
    assert move["attributes"]["handoff.trigger"] == "caller_identified"
    by_id = {s["span_id"]: s for s in received.spans}
    parent = by_id[move["parent"]]
    assert parent["name"] == "function_tool"  # LiveKit's span of the LLM's tool call
    assert parent["trace_id"] == move["trace_id"]
    names = {s["name"] for s in received.spans if s["trace_id"] == move["trace_id"]}
    assert "agent_session" in names  # one trace per call, LiveKit's root included
    assert move["resource"]["service.name"] == "support-line"


async def test_a_calls_spans_reach_an_otlp_http_receiver(
    monkeypatch: pytest.MonkeyPatch, http_receiver: tuple[str, Received], restore_tracer: None
) -> None:
    endpoint, received = http_receiver
    await _call_and_export(monkeypatch, endpoint, "http/protobuf")
    _check_transition_trace(received)


async def test_a_calls_spans_reach_an_otlp_grpc_receiver(
    monkeypatch: pytest.MonkeyPatch, grpc_receiver: tuple[str, Received], restore_tracer: None
) -> None:
    endpoint, received = grpc_receiver
    await _call_and_export(monkeypatch, endpoint, "grpc")
    _check_transition_trace(received)


def test_which_exporter_follows_the_standard_variables() -> None:
    assert exporter_kind({}) is None  # nothing set: no tracing, no cost
    assert exporter_kind({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) == "otlp"
    assert exporter_kind({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318"}) == "otlp"
    assert exporter_kind({"OTEL_TRACES_EXPORTER": "console"}) == "console"
    assert exporter_kind({"OTEL_TRACES_EXPORTER": "none",
                          "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) is None
    assert exporter_kind({"OTEL_SDK_DISABLED": "true",
                          "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) is None
    with pytest.raises(ValueError, match="otlp, console, none"):
        exporter_kind({"OTEL_TRACES_EXPORTER": "zipkin"})
    assert otlp_protocol({}) == "http/protobuf"
    assert otlp_protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}) == "grpc"
    assert otlp_protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                          "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}) == "http/protobuf"
    with pytest.raises(ValueError, match="http/protobuf or grpc"):
        otlp_protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})


# -- a collector that never answers never holds a call ------------------------------------
class SilentCollector:
    """A TCP server on 127.0.0.1 that accepts connections and never answers (a collector
    stuck behind a load balancer); it holds each one until closed."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.accepted = threading.Event()
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True, name="silent-collector").start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:  # closed
                return
            self.held.append(conn)
            self.accepted.set()

    def close(self) -> None:
        self.server.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent_collector() -> Iterator[SilentCollector]:
    collector = SilentCollector()
    yield collector
    collector.close()


async def test_a_collector_that_never_answers_never_holds_the_end_of_a_call(
    monkeypatch: pytest.MonkeyPatch, silent_collector: SilentCollector, restore_tracer: None
) -> None:
    """The exporter would wait 30 s on it (and the SDK's force_flush ignores its timeout):
    the end of the call returns within FLUSH_BOUND while the export is still in flight."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", silent_collector.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "30")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    provider = configure_from_env()
    assert provider is not None
    try:
        run = await _a_traced_call()
        await end_call(run, "participant_disconnected")  # the job's own end, bounded
        assert await asyncio.to_thread(silent_collector.accepted.wait, 30)
        in_flight = start_flush(provider)  # the flush end_call started is still waiting
        assert in_flight is not None and not in_flight.done()
        assert not flush(0.05, provider)  # the blocking form is bounded too
        assert start_flush(provider) is in_flight  # joined, never a second thread
    finally:
        await asyncio.to_thread(shutdown, provider, 0.2)  # bounded: the collector never answers


@pytest.mark.parametrize(("environ", "message"), [
    ({"OTEL_TRACES_EXPORTER": "zipkin"},
     "OTEL_TRACES_EXPORTER = 'zipkin': Value error, handoff supports otlp, console, none"),
    ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
     "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL = 'http/json': Value error, use http/protobuf or grpc"),
    ({"OTEL_SDK_DISABLED": "perhaps"},
     "OTEL_SDK_DISABLED = 'perhaps': Input should be a valid boolean, unable to interpret input"),
    ({"LIVEKIT_TELEMETRY_ALLOW_PII": "sure"},
     "LIVEKIT_TELEMETRY_ALLOW_PII = 'sure': Input should be a valid boolean, unable to interpret "
     "input"),
])
def test_a_bad_tracing_variable_is_one_line_naming_it(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        OtelSettings.load(environ)
    assert str(caught.value) == message


def test_tracing_settings_read_the_standard_variables() -> None:
    s = OtelSettings.load({"OTEL_TRACES_EXPORTER": " OTLP ", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                           "OTEL_SERVICE_NAME": "desk", "LIVEKIT_TELEMETRY_ALLOW_PII": "true",
                           "OTEL_SDK_DISABLED": ""})
    assert (s.exporter, s.protocol, s.service_name, s.allow_pii) == ("otlp", "grpc", "desk", True)
    assert OtelSettings.load({"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "console"}
                             ).exporter is None
