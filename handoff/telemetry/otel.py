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
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger("handoff.telemetry")

DEFAULT_SERVICE_NAME = "handoff-worker"
_configured: Any = None  # the provider this process set up, for flush()


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
    provider = TracerProvider(resource=Resource.create(attributes))  # sampler: OTEL_TRACES_SAMPLER
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
    logger.info("traces exported over %s (service %s)", where,
                provider.resource.attributes.get("service.name"))
    return provider


def flush(timeout_ms: int = 5000) -> None:
    """Export the spans still buffered (a job process flushes before its call ends)."""
    if _configured is not None:
        _configured.force_flush(timeout_ms)
