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
import os
import threading
from collections.abc import Mapping
from typing import Any

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


def exporter_kind(environ: Mapping[str, str] | None = None) -> str | None:
    """``otlp``, ``console`` or None (no tracing) from the environment."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    kind = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not kind:
        has_endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        return "otlp" if has_endpoint else None
    if kind == "none":
        return None
    if kind not in ("otlp", "console"):
        raise ValueError(f"OTEL_TRACES_EXPORTER={kind!r}: handoff supports otlp, console, none")
    return kind


def otlp_protocol(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip()
    if protocol not in ("http/protobuf", "grpc"):
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: use http/protobuf or grpc")
    return protocol


def configure_from_env(environ: Mapping[str, str] | None = None) -> Any:
    """Set up tracing from ``OTEL_*``; returns the ``TracerProvider`` or None (not configured).

    The SDK reads the variables from ``os.environ``; ``environ`` only decides whether
    and which exporter (tests pass a copy after setting ``os.environ`` through monkeypatch).
    """
    kind = exporter_kind(environ)
    if kind is None:
        return None
    from livekit.agents.telemetry import set_tracer_provider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    env = os.environ if environ is None else environ
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": DEFAULT_SERVICE_NAME}
    # sampler: OTEL_TRACES_SAMPLER; the SDK's own exit hook would wait on a dead collector
    provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
    exporter: Any
    if kind == "console":
        exporter = ConsoleSpanExporter()
        where = "console"
    elif otlp_protocol(environ) == "grpc":
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
    allow_pii = env.get("LIVEKIT_TELEMETRY_ALLOW_PII", "").strip().lower() in ("1", "true", "yes")
    set_tracer_provider(provider, allow_pii=allow_pii)
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
