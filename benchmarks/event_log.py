"""Event log and inspector: what recording a call costs on its turns, and how soon the
inspector's stream shows a transition.

1. Turns of the ring flow (every step a real handoff, then an ordinary tool turn) with
   an :class:`~handoff.events.EventLog` writing to SQLite, against the same turns of the
   same flow without one, interleaved A/B in one process and event loop. The writer runs
   in that loop too, so any of its work that lands inside a turn is counted.
2. The inspector's follow latency: a call records to SQLite while ``handoff inspect``'s
   app serves the same file; a client reads the call's server-sent event stream. From
   the commit of each transition (a flow observer notes ``perf_counter``) to the moment
   the stream delivers that transition. The page adds its own redraw on top (the browser
   test measures page-level figures; see docs/inspector.md).
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from livekit.agents import AgentSession

from handoff.events import EventLog, SQLiteEventStore
from handoff.inspector import InspectorServer

from ._common import (
    BenchResult,
    layer_ratio,
    main,
    median,
    paired_ratio_ci,
    percentile,
    ratio_ci,
)
from ._flows import BenchContext, ring_flow, scripted


async def _turn(session: AgentSession[Any], line: str) -> int:
    start = time.perf_counter_ns()
    await session.run(user_input=line)
    return time.perf_counter_ns() - start


async def overhead(turns: int, warmup: int, folder: Path, seed: int = 8) -> dict[str, Any]:
    """Interleaved turns with and without an event log; times in µs per kind."""
    plain_flow, logged_flow = ring_flow(), ring_flow()
    store = SQLiteEventStore(folder / "overhead.db")
    events = EventLog(store).install(logged_flow)
    rng = random.Random(seed)
    times: dict[str, dict[str, list[float]]] = {
        kind: {"plain": [], "logged": []} for kind in ("handoff", "ordinary")}
    async with AgentSession[BenchContext]() as plain_session, \
            AgentSession[BenchContext]() as logged_session:
        await plain_flow.start(plain_session, llm=scripted(), wait_opening=True)
        run = await logged_flow.start(logged_session, llm=scripted(), wait_opening=True)
        events.track(run, "bench")
        sides = [("plain", plain_session), ("logged", logged_session)]
        for i in range(warmup + turns):
            if i == warmup:
                gc.collect()
            for kind, line in (("handoff", f"go {i}"), ("ordinary", f"look {i}")):
                rng.shuffle(sides)
                for name, session in sides:
                    took = await _turn(session, line)
                    if i >= warmup:
                        times[kind][name].append(took / 1e3)
        await events.flush(30)
    written = events.written
    await events.aclose()
    return {"times": times, "written": written, "dropped": events.dropped,
            "transitions": len(run.log)}


class _Commits:
    """A flow observer noting when each transition committed."""

    def __init__(self) -> None:
        self.at: list[float] = []

    def on_transition(self, run: Any, record: Any) -> None:
        self.at.append(time.perf_counter())

    def on_refusal(self, run: Any, refusal: Any) -> None:
        pass


async def follow_latency(moves: int, folder: Path) -> list[float]:
    """ms from each commit to its event arriving on the inspector's stream."""
    flow = ring_flow()
    commits = _Commits()
    flow.observers.append(commits)
    events = EventLog(SQLiteEventStore(folder / "follow.db")).install(flow)
    server = InspectorServer(SQLiteEventStore(folder / "follow.db"), port=0)
    base = (await server.start()).rstrip("/")
    arrived: list[float] = []
    async with AgentSession[BenchContext]() as session:
        run = await flow.start(session, llm=scripted(), wait_opening=True)
        events.track(run, "follow")
        await events.flush(10)

        async def read() -> None:
            async with aiohttp.ClientSession() as http, \
                    http.get(f"{base}/api/calls/follow/stream") as response:
                kind = ""
                async for raw in response.content:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif (line.startswith("data: ") and kind == "step"
                          and json.loads(line[6:])["kind"] == "transition"):
                        arrived.append(time.perf_counter())
                        if len(arrived) == moves:
                            return

        reader = asyncio.create_task(read())
        for i in range(moves):
            await session.run(user_input=f"go {i}")
            await asyncio.sleep(0.3)  # each move on its own, as in a call
        await asyncio.wait_for(reader, 30)
    await events.aclose()
    await server.stop()
    await server.store.aclose()
    return [(a - c) * 1000 for c, a in zip(commits.at, arrived, strict=True)]


def run(quick: bool = False) -> BenchResult:
    turns, warmup, moves = (15, 3, 5) if quick else (300, 30, 40)
    result = BenchResult("event_log", "6. Event log and inspector: cost per turn, follow latency",
                         quick=quick)
    with tempfile.TemporaryDirectory() as tmp:
        measured = asyncio.run(overhead(turns, warmup, Path(tmp)))
        latency = asyncio.run(follow_latency(moves, Path(tmp)))
    for kind, label in (("handoff", "handoff turn"), ("ordinary", "ordinary-tool turn")):
        a, b = measured["times"][kind]["plain"], measured["times"][kind]["logged"]
        lo, hi = ratio_ci(a, b)
        paired, plo, phi = paired_ratio_ci(a, b)
        result.add(f"{label}: without / with the event log (median)",
                   f"{median(a) / 1e3:.2f} / {median(b) / 1e3:.2f} ms", detail=f"{len(a)} turns")
        result.add(f"{label}: with ÷ without the event log", layer_ratio(paired, plo, phi),
                   detail=f"median of per-pair ratios {paired:.3f}; ratio of medians "
                          f"{median(b) / median(a):.3f} (95% CI {lo:.3f}-{hi:.3f})")
    result.add("events written for the logged call", measured["written"],
               detail=f"{measured['transitions']} transitions; {measured['dropped']} dropped")
    result.add("commit → transition on the inspector's stream: median / p95 / max",
               f"{median(latency):.0f} / {percentile(latency, 0.95):.0f} / {max(latency):.0f} ms",
               detail=f"{len(latency)} transitions; writer coalesce 20 ms, stream poll 100 ms")
    result.extra = {"overhead": measured["times"], "follow_latency_ms": latency}
    result.notes.append(
        "The event log's writer shares the call's event loop (as in a worker), so its "
        "batches to SQLite (in a thread) count wherever they overlap a turn. The follow "
        "latency is what the browser page waits for before it redraws.")
    return result


if __name__ == "__main__":
    main(run)
