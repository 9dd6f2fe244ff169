"""Observability of flows: a span per transition and Prometheus metrics.

    from handoff.telemetry import FlowTelemetry, start_metrics_server
    FlowTelemetry().install(flow)          # spans + metrics for every run of the flow
    start_metrics_server(9100)             # only outside a LiveKit worker with prometheus_port

See docs/operations.md for a trace of one call and the metrics to plot.
"""

from .metrics import HandoffMetrics, default_metrics, start_metrics_server
from .observer import SPAN_NAME, FlowTelemetry

__all__ = ["SPAN_NAME", "FlowTelemetry", "HandoffMetrics", "default_metrics",
           "start_metrics_server"]
