"""Production defaults: the handoff turn bench with what the worker installs, each part's share.

``handoff run`` (:mod:`handoff.worker`) installs on every call: telemetry
(``FlowTelemetry().install(flow)``: a ``handoff.transition`` span and Prometheus counters per
move), SQLite checkpoints (``resume_or_start(..., checkpointer=Checkpointer(store))`` with the
store of ``HANDOFF_CHECKPOINT_DIR``) and the SQLite event log beside them
(``EventLog(event_store_from_env()).install(flow)``, then ``events.track(run, call_id)``).
This benchmark installs them the same way, one side per part and one with all of them, and
runs the same turns as :mod:`benchmarks.handoff_turn` on every side, each round's turns
back to back in an order drawn per round:

- ``raw LiveKit``: the ring's raw LiveKit twin (the base);
- ``handoff``: the bare flow;
- ``+ telemetry``, ``+ checkpoints``, ``+ event log``: the bare flow with one part;
- ``production defaults``: all three, as ``handoff.worker.entrypoint`` installs them.

Spans go to OpenTelemetry's in-memory exporter behind a ``BatchSpanProcessor`` (the
worker's processor), set as LiveKit's tracer provider for the whole process: LiveKit's own
spans are then recorded on every side, raw LiveKit's included, as they are in a traced
worker. Each side's Prometheus metrics go to a registry of its own. The writers run as in
the worker: on the call's event loop, their SQLite work in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from livekit.agents import AgentSession
from livekit.agents.telemetry import set_tracer_provider, tracer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from handoff import FlowRun, resume_or_start
from handoff.events import EventLog, event_store_from_env
from handoff.persistence import Checkpointer, store_from_env
from handoff.telemetry import FlowTelemetry, HandoffMetrics
from handoff.testing import ScriptedLLM

from ._common import BenchResult, at_most, layer_added, layer_ratio, main
from ._flows import BenchContext, ring_flow
from .handoff_turn import KINDS, LABELS, Side, added, flow_side, interleave, raw_side

TARGET_RATIO = 1.05
"""handoff with the worker's defaults ÷ raw LiveKit per handoff turn, CI upper bound."""
PARTS = ("telemetry", "checkpoints", "event log")
ALL = "production defaults"
CONFIGS: dict[str, tuple[str, ...]] = {"handoff": (), **{f"+ {p}": (p,) for p in PARTS}, ALL: PARTS}
"""Each handoff side's parts."""


class ThreadClock:
    """CPU time of the threads that work off the call's loop (the writers'), read between
    rounds: a writer's thread ends when idle and another starts, so
    each thread's last reading counts, less what it had used by the end of the warm-up."""

    def __init__(self) -> None:
        self.last: dict[threading.Thread, float] = {}
        self.base: dict[threading.Thread, float] = {}

    def read(self, thread: threading.Thread | None) -> None:
        if thread is None or thread.ident is None:
            return
        with contextlib.suppress(OSError):  # it ended since: its last reading stands
            self.last[thread] = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))

    def warmed_up(self) -> None:
        self.base = dict(self.last)

    def seconds(self, threads: list[threading.Thread]) -> float:
        return sum(self.last[t] - self.base.get(t, 0.0) for t in threads if t in self.last)


class Installed:
    """The worker's parts for one side, made and installed as ``handoff.worker`` does."""

    def __init__(self, parts: tuple[str, ...], folder: Path) -> None:
        self.parts = parts
        env = {"HANDOFF_CHECKPOINT_DIR": str(folder)}
        self.metrics = metrics = HandoffMetrics(CollectorRegistry())
        self.flow = ring_flow()
        self.telemetry = (FlowTelemetry(metrics).install(self.flow)
                          if "telemetry" in parts else None)
        store = store_from_env(env) if "checkpoints" in parts else None
        self.checkpointer = None if store is None else Checkpointer(store, metrics=metrics)
        events = event_store_from_env(env) if "event log" in parts else None
        self.events = None if events is None else EventLog(events).install(self.flow)
        self.threads: list[threading.Thread] = []
        """Every thread its writers ran in (:meth:`read_threads`)."""

    def read_threads(self, clock: ThreadClock) -> None:
        """Read the CPU time of its writers' threads (between rounds)."""
        for writer in (self.checkpointer, self.events):
            thread = None if writer is None else writer.thread
            if thread is not None:
                if thread not in self.threads:
                    self.threads.append(thread)
                clock.read(thread)

    async def start(self, session: AgentSession[BenchContext],
                    model: ScriptedLLM) -> FlowRun[BenchContext]:
        """``handoff.worker.start_call`` then ``entrypoint``: the run, tracked by each part."""
        call_id = "bench-" + "-".join(p.replace(" ", "") for p in self.parts)
        if self.checkpointer is not None:
            run = await resume_or_start(self.flow, session, checkpointer=self.checkpointer,
                                        call_id=call_id, llm=model, telemetry=self.telemetry,
                                        wait_opening=True)
        else:
            run = await self.flow.start(session, llm=model, call_id=call_id, wait_opening=True)
            if self.telemetry is not None:
                self.telemetry.track(run)
        if self.events is not None:
            self.events.track(run, call_id)
        return run

    async def aclose(self) -> dict[str, int]:
        """Let the writers finish; what they wrote and dropped."""
        out: dict[str, int] = {}
        if self.checkpointer is not None:
            await self.checkpointer.flush(30)
            kind = self.checkpointer.store.kind
            for what, metric in (("written", "handoff_checkpoint_writes_total"),
                                 ("dropped", "handoff_checkpoints_dropped_total")):
                out[f"checkpoints {what}"] = int(self.metrics.value(metric, store=kind))
            await self.checkpointer.aclose()
        if self.events is not None:
            await self.events.flush(30)
            out["events written"], out["events dropped"] = self.events.written, self.events.dropped
            await self.events.aclose()
        return out


async def measure(turns: int, warmup: int, folder: Path
                  ) -> tuple[list[Side], dict[str, dict[str, int]], int, dict[str, float]]:
    """Every side's turns, interleaved; the writers' counts, the spans exported and the CPU
    seconds of each side's writers' threads."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    previous = tracer._tracer_provider
    set_tracer_provider(provider)
    spans = rounds = 0
    clock = ThreadClock()

    def between() -> None:  # outside any timed turn: keep the exporter from growing
        nonlocal spans, rounds
        spans += len(exporter.get_finished_spans())
        exporter.clear()
        for inst in installed.values():
            inst.read_threads(clock)
        rounds += 1
        if rounds == warmup:
            clock.warmed_up()

    installed: dict[str, Installed] = {}
    written: dict[str, dict[str, int]] = {}
    try:
        async with AsyncExitStack() as stack:
            sides = [await raw_side(stack)]
            for name, parts in CONFIGS.items():
                (sub := folder / name.replace(" ", "_").strip("+_")).mkdir()
                installed[name] = Installed(parts, sub)
                starter: Callable[..., Awaitable[FlowRun[BenchContext]]] = installed[name].start
                sides.append(await flow_side(stack, name, installed[name].flow, starter))
            await interleave(sides, turns, warmup, between=between)
            off_loop = {name: clock.seconds(inst.threads) for name, inst in installed.items()}
            for name, inst in installed.items():
                written[name] = await inst.aclose()
    finally:
        provider.force_flush()
        between()
        tracer.set_provider(previous)
        provider.shutdown()
    return sides, written, spans, off_loop


def run(quick: bool = False) -> BenchResult:
    turns, warmup = (10, 3) if quick else (600, 30)
    with tempfile.TemporaryDirectory() as tmp:
        sides, written, spans, off_loop = asyncio.run(measure(turns, warmup, Path(tmp)))
    result = BenchResult("production", "9. Production defaults: telemetry, checkpoints, "
                         "event log", quick=quick)
    by_name = {s.name: s for s in sides}
    raw, bare, full = by_name["raw LiveKit"], by_name["handoff"], by_name[ALL]
    extra: dict[str, Any] = {}
    for kind in KINDS:
        label = LABELS[kind]
        fig = added(raw, full, kind)
        ratio, lo, hi = fig["paired_ratio"]
        judged = kind == "handoff"
        result.add(f"{label}: {ALL} ÷ raw LiveKit, wall clock", layer_ratio(ratio, lo, hi),
                   target=f"≤ {TARGET_RATIO} (CI upper bound)" if judged else None,
                   met=at_most(hi, TARGET_RATIO) if judged else None,
                   detail=f"median of per-pair ratios {ratio:.3f} over {fig['turns']} pairs; "
                          "wall clock: the turn's work on the loop and whatever the threads off "
                          "it do meanwhile")
        cratio, clo, chi = fig["cpu_paired_ratio"]
        result.add(f"{label}: {ALL} ÷ raw LiveKit, thread CPU", layer_ratio(cratio, clo, chi),
                   detail=f"median of per-pair ratios {cratio:.3f}")
        extra[kind] = {"all_vs_raw": fig, "bare_vs_raw": added(raw, bare, kind)}
        shares = []
        for name in (*(f"+ {p}" for p in PARTS), ALL):
            share = added(bare, by_name[name], kind)
            extra[kind][name] = share
            shares.append(f"{name.removeprefix('+ ')}: {layer_added(*share['added_us'])}, "
                          f"CPU {layer_added(*share['cpu_added_us'])}")
        result.add(f"{label}: each part's share over the bare flow", "; ".join(shares),
                   detail="median of per-pair differences against the bare handoff side, "
                          "wall clock, then the event-loop thread's CPU time")
    result.add("written by the writers", "; ".join(
        f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
        for name, counts in written.items() if counts) or "n/a",
        detail=f"{spans:,} spans exported in memory over the run")
    per_round = {name: seconds / turns * 1e6 for name, seconds in off_loop.items()}
    result.add("off the call's loop: CPU of the writers' threads, per round",
               "; ".join(f"{name.removeprefix('+ ')}: {us:,.0f} µs" for name, us
                         in per_round.items() if {"checkpoints", "event log"} & set(CONFIGS[name])),
               detail="a round is one handoff turn and one ordinary turn per side; this work is "
                      "done off the loop and lands in whichever side's turn runs then, so the "
                      "per-pair figures above spread it over every side")
    extra["off_loop_us_per_round"] = per_round
    result.extra = extra
    result.notes.append(
        "Installed as `handoff.worker` installs them: FlowTelemetry on the flow and tracking "
        "the run, a Checkpointer of the SQLite store in HANDOFF_CHECKPOINT_DIR through "
        "`resume_or_start`, the EventLog of `event_store_from_env()` beside it. An "
        "OpenTelemetry provider (BatchSpanProcessor → in-memory exporter) is LiveKit's for "
        "the whole process, so raw LiveKit's own spans are recorded too.")
    return result


if __name__ == "__main__":
    main(run)
