"""`python -m examples.callcenter.observe`: one call-centre call, seen as operations sees it.

Runs the demo conversation (scripted caller, offline ScriptedLLM agent) through a
real AgentSession with checkpoints in a SQLite file, transition spans on LiveKit's
tracer (exported to memory here; OTLP in production) and the handoff metrics on
their own registry. Prints the trace as a tree, the metrics a dashboard plots,
and the last checkpoint. docs/operations.md shows its output.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from livekit.agents import AgentSession
from livekit.agents.telemetry import set_tracer_provider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest

from handoff import resume_or_start
from handoff.persistence import Checkpointer, SQLiteStore
from handoff.telemetry import SPAN_NAME, FlowTelemetry, HandoffMetrics
from handoff.testing import ScriptedLLM

from .demo import AGENT_SCRIPT, CALLER
from .flow import Call, flow

SHOWN = {"agent_session", "agent_turn", "function_tool", "update_agent", SPAN_NAME}


def print_tree(spans: list[ReadableSpan]) -> None:
    by_id = {s.context.span_id: s for s in spans if s.context}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent and span.parent.span_id in by_id else None
        children.setdefault(parent, []).append(span)
    t0 = min(s.start_time or 0 for s in spans)

    def show(span: ReadableSpan, depth: int) -> None:
        if span.name in SHOWN:
            start = ((span.start_time or 0) - t0) / 1e6
            took = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
            line = f"{'  ' * depth}{span.name:<{34 - 2 * depth}} +{start:7.1f} ms {took:6.1f} ms"
            attrs = dict(span.attributes or {})
            if span.name == SPAN_NAME:
                line += (f"  {attrs['handoff.from']} → {attrs.get('handoff.to')} "
                         f"[{attrs['handoff.trigger']}] {attrs['handoff.outcome']}"
                         f", guard {attrs['handoff.guard']}, tier {attrs.get('handoff.tier')}")
                if "handoff.refusal.reason" in attrs:
                    line += f"\n{'  ' * (depth + 1)}  reason: {attrs['handoff.refusal.reason']}"
                for event in span.events:
                    line += f"\n{'  ' * (depth + 1)}  event: {event.name}"
            elif span.name == "function_tool":
                line += f"  {attrs.get('lk.function_tool.name')}"
            print(line)
            depth += 1
        for child in sorted(children.get(span.context.span_id if span.context else None, []),
                            key=lambda s: s.start_time or 0):
            show(child, depth)

    for root in sorted(children.get(None, []), key=lambda s: s.start_time or 0):
        show(root, 0)


async def main() -> int:
    logging.basicConfig(level=logging.ERROR)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    set_tracer_provider(provider, allow_pii=False)
    metrics = HandoffMetrics(CollectorRegistry())
    telemetry = FlowTelemetry(metrics).install(flow)

    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "checkpoints.db")
        checkpointer = Checkpointer(store, metrics=metrics, forget_on=frozenset())
        async with AgentSession[Call]() as session:
            await resume_or_start(flow, session, checkpointer=checkpointer,
                                  call_id="sip-call-0042", llm=ScriptedLLM(list(AGENT_SCRIPT)),
                                  telemetry=telemetry, wait_opening=True)
            for line in CALLER:
                await session.run(user_input=line)
            await checkpointer.flush(5)
        checkpoint = await store.load("sip-call-0042")
        await checkpointer.aclose()

    print("── trace (LiveKit's spans and handoff.transition) ──")
    print_tree(list(exporter.get_finished_spans()))
    print("\n── metrics (handoff_*, Prometheus text format) ──")
    skipped = ("handoff_time_in_state_seconds_bucket", "handoff_duration_seconds_bucket",
               "handoff_checkpoint_write_seconds_bucket")
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith("handoff_") and not line.startswith(skipped) and "_created" not in line:
            print(line)
    print("\n── last checkpoint ──")
    data: dict[str, Any] = checkpoint.to_dict() if checkpoint else {}
    data["history"] = ["…", *data.get("history", [])[-2:]]
    print(json.dumps(data, indent=2, ensure_ascii=False))
    return 0 if checkpoint is not None else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
