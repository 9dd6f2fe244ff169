"""OpenTelemetry from the standard ``OTEL_*`` environment variables.

``handoff run`` (and every job process it starts) calls :func:`configure_from_env`:
when ``OTEL_TRACES_EXPORTER`` names an exporter, or an OTLP endpoint is set, it
builds a ``TracerProvider`` the OpenTelemetry way and gives it to LiveKit
(``livekit.agents.telemetry.set_tracer_provider``), so LiveKit's spans and
handoff's ``handoff.transition`` spans go to the same place. The variables are the
SDK's own, read by the SDK and the exporters themselves:

- ``OTEL_TRACES_EXPORTER``: ``otlp`` (default when an endpoint is set), ``console``,
  ``none``; ``OTEL_SDK_DISABLED=true`` turns everything off;
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``..._HEADERS``,
  ``..._TIMEOUT``, ``..._CERTIFICATE``;
- ``OTEL_EXPORTER_OTLP_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``: ``http/protobuf``
  (default) or ``grpc``;
- ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``; ``OTEL_TRACES_SAMPLER`` and
  ``OTEL_TRACES_SAMPLER_ARG``; ``OTEL_BSP_*`` for the batch processor.

Conversation content stays out of exported spans unless ``LIVEKIT_TELEMETRY_ALLOW_PII``
is true: LiveKit's PII filter then also drops ``handoff.pii.*`` attributes.

A collector never holds a call: ending one waits at most :data:`FLUSH_BOUND` (1 s) for
its spans (:func:`flush`, :func:`flush_async`), whatever the exporter does. The SDK's
``force_flush`` ignores its timeout (opentelemetry-python#4623: an OTLP export to a
collector that accepts and never answers takes the exporter's own timeout, 10 s, and
retries), so, as LiveKit does for its own exporters, the flush runs on a daemon thread
and the caller waits on it with a real deadline; a flush still stuck is joined by the
next, never doubled. The spans it leaves are exported by the batch processor when the
collector answers again. Process exit is bounded the same way (:func:`shutdown`).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import threading
from collections.abc import Mapping
from typing import Any

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import SettingsConfigDict

from ..settings import HandoffSettings

logger = logging.getLogger("handoff.telemetry")

DEFAULT_SERVICE_NAME = "handoff-worker"
FLUSH_BOUND = 1.0
"""Seconds the end of a call waits, at most, for its spans to reach the collector."""
SHUTDOWN_BOUND = 2.0
"""Seconds a process's exit waits, at most, for the tracer provider to shut down."""
_SDK_TIMEOUT_MS = 30_000  # passed on, though the SDK ignores it
_configured: Any = None  # the provider this process set up, for flush()
_flush_lock = threading.Lock()
_flushing: dict[int, tuple[Any, concurrent.futures.Future[bool]]] = {}  # by id(provider)


class OtelSettings(HandoffSettings):
    """The standard variables handoff itself reads to decide whether and how to trace (the
    SDK and the exporters read the rest); a blank variable counts as unset."""

    section = "telemetry"
    blank_env_is_unset = True
    model_config = SettingsConfigDict(env_prefix="OTEL_")

    sdk_disabled: bool = False
    """``OTEL_SDK_DISABLED``: true turns tracing off whatever else is set."""
    traces_exporter: str | None = None
    """``OTEL_TRACES_EXPORTER``: ``otlp``, ``console`` or ``none`` (unset: ``otlp`` when an
    endpoint is set, else no tracing)."""
    exporter_otlp_endpoint: str | None = None
    """``OTEL_EXPORTER_OTLP_ENDPOINT``: the collector."""
    exporter_otlp_traces_endpoint: str | None = None
    """``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``: the collector, for traces only."""
    exporter_otlp_protocol: str = "http/protobuf"
    """``OTEL_EXPORTER_OTLP_PROTOCOL``: ``http/protobuf`` or ``grpc``."""
    exporter_otlp_traces_protocol: str | None = None
    """``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``: the same, for traces only (wins)."""
    service_name: str | None = None
    """``OTEL_SERVICE_NAME``: the service in traces (unset: ``handoff-worker``)."""
    allow_pii: bool = Field(False, validation_alias=AliasChoices(
        "allow_pii", "LIVEKIT_TELEMETRY_ALLOW_PII"))
    """``LIVEKIT_TELEMETRY_ALLOW_PII``: conversation content in exported spans."""

    @field_validator("traces_exporter", mode="before")
    @classmethod
    def _exporter(cls, value: Any) -> Any:
        if value is None:
            return None
        kind = str(value).strip().lower()
        if kind not in ("otlp", "console", "none"):
            raise ValueError("handoff supports otlp, console, none")
        return kind

    @field_validator("exporter_otlp_protocol", "exporter_otlp_traces_protocol", mode="before")
    @classmethod
    def _protocol(cls, value: Any) -> Any:
        if value is None:
            return None
        protocol = str(value).strip()
        if protocol not in ("http/protobuf", "grpc"):
            raise ValueError("use http/protobuf or grpc")
        return protocol

    @property
    def exporter(self) -> str | None:
        """``otlp``, ``console`` or None (no tracing)."""
        if self.sdk_disabled or self.traces_exporter == "none":
            return None
        if self.traces_exporter is None:
            has_endpoint = self.exporter_otlp_endpoint or self.exporter_otlp_traces_endpoint
            return "otlp" if has_endpoint else None
        return self.traces_exporter

    @property
    def protocol(self) -> str:
        """The OTLP protocol of traces."""
        return self.exporter_otlp_traces_protocol or self.exporter_otlp_protocol


def exporter_kind(environ: Mapping[str, str] | None = None) -> str | None:
    """``otlp``, ``console`` or None (no tracing) from the environment
    (:class:`OtelSettings`; a bad value is a one-line ConfigError)."""
    return OtelSettings.load(environ).exporter


def otlp_protocol(environ: Mapping[str, str] | None = None) -> str:
    """``http/protobuf`` or ``grpc`` from the environment."""
    return OtelSettings.load(environ).protocol


def configure_from_env(environ: Mapping[str, str] | None = None) -> Any:
    """Set up tracing from ``OTEL_*``; returns the ``TracerProvider`` or None (not configured).

    The SDK reads the variables from ``os.environ``; ``environ`` only decides whether
    and which exporter (tests pass a copy after setting ``os.environ`` through monkeypatch).
    """
    settings = OtelSettings.load(environ)
    kind = settings.exporter
    if kind is None:
        return None
    from livekit.agents.telemetry import set_tracer_provider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    attributes = {} if settings.service_name else {"service.name": DEFAULT_SERVICE_NAME}
    # sampler: OTEL_TRACES_SAMPLER; the SDK's own exit hook would wait on a dead collector
    provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
    exporter: Any
    if kind == "console":
        exporter = ConsoleSpanExporter()
        where = "console"
    elif settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
        where = "OTLP/gRPC"
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        exporter = HttpExporter()
        where = "OTLP/HTTP"
    provider.add_span_processor(BatchSpanProcessor(exporter))
    set_tracer_provider(provider, allow_pii=settings.allow_pii)
    global _configured
    _configured = provider
    atexit.register(shutdown, provider)
    logger.info("traces exported over %s (service %s)", where,
                provider.resource.attributes.get("service.name"))
    return provider


def start_flush(provider: Any = None) -> concurrent.futures.Future[bool] | None:
    """Start exporting the spans ``provider`` (default: the configured one) still buffers,
    on a daemon thread; its future (True once all were exported), None without tracing.
    A flush still running (a collector that does not answer) is returned, not doubled."""
    provider = provider if provider is not None else _configured
    if provider is None:
        return None
    with _flush_lock:
        running = _flushing.get(id(provider))
        if running is not None and running[0] is provider and not running[1].done():
            return running[1]
        future: concurrent.futures.Future[bool] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(bool(provider.force_flush(_SDK_TIMEOUT_MS)))
            except Exception as exc:
                logger.warning("span flush failed: %s: %s", type(exc).__name__, exc)
                future.set_result(False)


        def forget(_: object) -> None:
            with _flush_lock:
                if _flushing.get(id(provider), (None, None))[1] is future:
                    del _flushing[id(provider)]

        future.add_done_callback(forget)
        _flushing[id(provider)] = (provider, future)
        threading.Thread(target=run, name="handoff-telemetry-flush", daemon=True).start()
        return future


def flush(timeout: float = FLUSH_BOUND, provider: Any = None) -> bool:
    """Export the spans still buffered, waiting ``timeout`` seconds at most (however long
    the exporter takes); True when they all went."""
    future = start_flush(provider)
    if future is None:
        return True
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        logger.warning("spans not exported within %.1fs (collector slow or unreachable); "
                       "the call ends without waiting for them", timeout)
        return False


async def flush_async(timeout: float = FLUSH_BOUND, provider: Any = None) -> bool:
    """:func:`flush` for the event loop: awaits the flush thread, never blocks the loop."""
    future = start_flush(provider)
    if future is None:
        return True
    try:
        return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout)
    except TimeoutError:
        logger.warning("spans not exported within %.1fs (collector slow or unreachable); "
                       "the call ends without waiting for them", timeout)
        return False


def shutdown(provider: Any, timeout: float = SHUTDOWN_BOUND) -> bool:
    """Shut ``provider`` down (at process exit), waiting ``timeout`` seconds at most."""
    thread = threading.Thread(target=provider.shutdown, name="handoff-telemetry-shutdown",
                              daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive()
