"""Prometheus metrics of flows and checkpoints.

By default they live on prometheus-client's global registry, which is the one a
LiveKit worker serves on its ``prometheus_port`` (``/metrics``). Tests pass their
own ``CollectorRegistry``. Outside a LiveKit worker, :func:`start_metrics_server`
serves a registry.

In a worker, calls run in job processes: ``handoff run`` turns on prometheus-client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, :func:`multiprocess_dir`) before
anything imports prometheus-client, so the worker's ``/metrics`` adds up every
process. Each gauge says how its processes combine (``multiprocess_mode``); the
worker's own gauges (:func:`worker_gauges`) are made after LiveKit has emptied the
directory at start-up, never at import.

Labels are bounded: flow, state and trigger names come from the flow definition
and refusal reasons are their kind (``guard``, ``invalid``, ``busy``…), never the
free text, so no caller data can reach a label.
"""

from __future__ import annotations

import os
import tempfile
import threading
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)

_STATE_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800)
_HANDOFF_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_WRITE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1)


class HandoffMetrics:
    """The handoff metric family, registered once on ``registry``."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.transitions = Counter(
            "handoff_transitions_total", "Transitions taken",
            ["flow", "from_state", "to_state"], registry=registry)
        self.refusals = Counter(
            "handoff_refusals_total", "Transitions refused, by kind of reason",
            ["flow", "trigger", "reason"], registry=registry)
        self.time_in_state = Histogram(
            "handoff_time_in_state_seconds", "Time a call spent in a state before leaving it",
            ["flow", "state"], buckets=_STATE_BUCKETS, registry=registry)
        self.handoff_duration = Histogram(
            "handoff_duration_seconds",
            "From the transition's request to the new agent being active",
            ["flow", "from_state", "to_state"], buckets=_HANDOFF_BUCKETS, registry=registry)
        self.active_runs = Gauge(
            "handoff_active_flow_runs", "Flow runs attached to a live session",
            ["flow"], registry=registry, multiprocess_mode="livesum")
        self.checkpoint_writes = Counter(
            "handoff_checkpoint_writes_total", "Checkpoints written", ["store"],
            registry=registry)
        self.checkpoint_errors = Counter(
            "handoff_checkpoint_errors_total", "Checkpoint writes that failed (store outage)",
            ["store"], registry=registry)
        self.checkpoint_dropped = Counter(
            "handoff_checkpoints_dropped_total",
            "Checkpoints dropped because the write queue was full", ["store"], registry=registry)
        self.checkpoint_write_seconds = Histogram(
            "handoff_checkpoint_write_seconds", "Time to write one checkpoint", ["store"],
            buckets=_WRITE_BUCKETS, registry=registry)
        self.resumes = Counter(
            "handoff_resumes_total",
            "Calls picked up from a checkpoint (outcome: resumed, migrated, fallback, "
            "migration_failed, failed)",
            ["flow", "outcome"], registry=registry)

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when absent): for tests and health checks."""
        got = self.registry.get_sample_value(name, labels)
        return 0.0 if got is None else got


class WorkerGauges:
    """The worker process's gauges: what the HPA scales on. Set by the main process only."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        # mostrecent: one writer (the worker's main process), no pid label in multiprocess mode
        self.active_jobs = Gauge(
            "handoff_worker_active_jobs", "Calls (LiveKit jobs) running in this worker",
            registry=registry, multiprocess_mode="mostrecent")
        self.max_jobs = Gauge(
            "handoff_worker_max_jobs", "Calls this worker takes before it reports itself full",
            registry=registry, multiprocess_mode="mostrecent")


_default: HandoffMetrics | None = None
_worker: WorkerGauges | None = None
_default_lock = threading.Lock()


def default_metrics() -> HandoffMetrics:
    """The process-wide metrics on the global registry (made on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = HandoffMetrics(REGISTRY)
        return _default


def worker_gauges() -> WorkerGauges:
    """The worker's gauges on the global registry, made on first use.

    Made lazily on purpose: a label-less metric opens its multiprocess file when
    made, and LiveKit empties ``PROMETHEUS_MULTIPROC_DIR`` when the worker starts; a
    gauge made before that would write to a deleted file (and hide LiveKit's own
    gauges sharing it).
    """
    global _worker
    with _default_lock:
        if _worker is None:
            _worker = WorkerGauges(REGISTRY)
        return _worker


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir(environ: dict[str, str] | os._Environ[str] | None = None) -> str:
    """The directory for multiprocess metrics: ``PROMETHEUS_MULTIPROC_DIR`` if set, else a
    new temporary directory (created)."""
    env = os.environ if environ is None else environ
    folder = env.get(MULTIPROC_ENV)
    if not folder:
        folder = tempfile.mkdtemp(prefix="handoff-metrics-")
    os.makedirs(folder, exist_ok=True)
    return folder


def start_metrics_server(
    port: int, addr: str = "0.0.0.0", registry: CollectorRegistry | None = None
) -> Any:
    """Serve ``/metrics`` on ``addr:port`` in a daemon thread; returns the server.

    Not needed inside a LiveKit worker started with ``prometheus_port`` (it serves
    the global registry already). With ``PROMETHEUS_MULTIPROC_DIR`` set (LiveKit's
    job processes), it serves the metrics of every process.
    """
    if registry is None:
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            default_metrics()
            registry = REGISTRY
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server
