"""Benchmarks: what handoff costs on top of LiveKit Agents (``make bench``).

Each module runs alone (``python -m benchmarks.handoff_turn [--quick]``);
``python -m benchmarks`` runs them all, each in its own process, and writes
``docs/benchmarks.md`` and ``benchmarks/results.json``, with the peer's figures
(``make bench-peers``: :mod:`benchmarks.pipecat_flows` in its own venv) beside them.
"""

BENCHMARKS = (
    "handoff_turn",
    "bytecodes",
    "fsm_decision",
    "memory",
    "definitions",
    "testing_throughput",
    "event_log",
    "voice_latency",
    "realtime_latency",
    "exploration",
    "production",
    "job_release",
)
