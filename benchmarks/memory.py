"""Memory: Python heap added per live flow run, and how many runs/sessions fit in a process.

1. Per flow run (tracemalloc): N pure runs (``flow.new_run()``) kept alive, heap added ÷ N,
   for flows of several sizes (a run's FSM model gets per-run trigger helpers from the
   shared ``transitions`` Machine, so size matters).
2. 10 000 concurrent pure runs of one flow in one process: total heap, bytes per run,
   each run moved once to show it is live, and the time to create the first and the last
   thousand (flat unless the Machine keeps the live runs in a list it scans).
3. Runs that ended (closed with ``run.close()``, or dropped without it) and were
   collected: what the shared Machine still holds.
4. Live AgentSessions (text mode, started, opening reply done): a bounded number with
   handoff and the same number with raw LiveKit agents, heap per session, and the count
   that would fit in 2 GB *extrapolated* from that (we do not fill 2 GB on a shared box).
5. Sequential whole calls (a session started, three caller lines with two handoffs and a
   tool call, closed), one after another in one process: the heap still held after N of
   them, per call, with handoff and with raw LiveKit, in each half of the run (a leak
   grows in both halves; a cache warming up only in the first).
"""

from __future__ import annotations

import asyncio
import gc
import json
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from livekit.agents import AgentSession

from ._common import ROOT, BenchResult, at_most, main, paired_diff_ci, quiet_livekit
from ._flows import BenchContext, RawPing, generated_flow, ring_flow, scripted

TARGET_BYTES = 4096
"""Heap per live flow run (DESIGN §8)."""
TARGET_SESSION_BYTES = 2048
"""Heap handoff adds per live AgentSession over raw LiveKit, on the CI's upper bound."""
TARGET_RUNS = 10_000
BUDGET = 2 * 1024**3


def _callcenter() -> Any:
    from examples.callcenter.flow import flow

    return flow


def heap_per(make: Callable[[], Any], n: int) -> tuple[float, list[Any]]:
    """Heap bytes added per object while ``n`` objects made by ``make`` are alive."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [make() for _ in range(n)]
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (after - before) / n, kept


def _rss() -> int:
    """Resident set size now, in bytes (from /proc; ru_maxrss is only the peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def per_run_by_flow(result: BenchResult, quick: bool) -> None:
    flows: list[tuple[str, Any, int]] = [
        ("ring (3 states, 3 transitions)", ring_flow(), 10_000),
        ("call centre example (5 states + 1 global)", _callcenter(), 10_000),
        ("generated 20 states", generated_flow(20), 2_000),
        ("generated 200 states", generated_flow(200), 300),
    ]
    for label, flow, n in flows:
        n = min(n, 200) if quick else n
        per, kept = heap_per(flow.new_run, n)
        edges = len(flow.edges)
        result.add(f"heap per live flow run: {label}", round(per), "B",
                   target=f"≤ {TARGET_BYTES} B", met=per <= TARGET_BYTES,
                   detail=f"{n} runs alive, {len(flow.states)} states, {edges} edges")
        result.extra.setdefault("per_run_bytes", {})[label] = per
        del kept
        gc.collect()


async def _move_all(runs: list[Any]) -> int:
    for r in runs:
        await r.go("to_pong")
    return sum(1 for r in runs if r.state == "Pong")


def ten_thousand(result: BenchResult, quick: bool) -> None:
    n = 1_000 if quick else TARGET_RUNS
    chunk = n // 10
    # pass 1, untraced: how long a run takes to make as the number of live runs grows
    flow = ring_flow()
    gc.collect()
    runs: list[Any] = []
    chunk_times = []
    for _ in range(10):
        start = time.perf_counter()
        runs.extend(flow.new_run(BenchContext(caller="x")) for _ in range(chunk))
        chunk_times.append((time.perf_counter() - start) / chunk * 1e6)
    gc.collect()

    moved = asyncio.run(_move_all(runs))
    del runs
    gc.collect()
    # pass 2, traced, on a fresh flow: the heap the live runs hold
    fresh = ring_flow()
    total, kept = heap_per(lambda: fresh.new_run(BenchContext(caller="x")), n)
    total *= n
    del kept
    gc.collect()
    result.add("concurrent pure flow runs in one process", moved, "runs",
               target=f"{TARGET_RUNS:,}", met=moved >= TARGET_RUNS,
               detail="each alive and moved once with `await run.go(...)`")
    result.add(f"heap for {n:,} live runs (context included)", round(total / 1024**2, 2), "MiB",
               detail=f"{total / n:,.0f} B per run")
    result.add("time to make a run: first / last tenth",
               f"{chunk_times[0]:.1f} / {chunk_times[-1]:.1f} µs",
               detail="flat: making a run does not depend on how many are alive")
    result.extra["ten_thousand"] = {"runs": n, "heap_bytes": total,
                                    "create_us_by_tenth": chunk_times}


def ended_runs(result: BenchResult, quick: bool) -> None:
    """Heap still held once runs are over: closed with ``run.close()``, or just dropped."""
    n = 200 if quick else 2_000
    for closed in (True, False):
        flow = ring_flow()
        models_before = len(flow.machine.models)
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        runs = [flow.new_run() for _ in range(n)]
        if closed:
            for r in runs:
                r.close()
        del runs
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        held = len(flow.machine.models) - models_before
        how = "closed with run.close()" if closed else "dropped without close()"
        result.add(f"heap still held after runs end: {how}", round(kept / n), "B per run",
                   detail=f"{held} of {n} FSM models still in flow.machine.models")
        result.extra[f"ended_runs_{'closed' if closed else 'dropped'}"] = {
            "runs": n, "bytes_kept": kept, "models_held": held}


async def _start(flow: Any, side: str) -> AgentSession[BenchContext]:
    """A live session of ``side``, started as a worker starts a call (no RunResult kept),
    once its opening reply is over."""
    session = AgentSession[BenchContext]()
    if side == "handoff":
        await flow.start(session, llm=scripted())
    else:
        session.userdata = BenchContext()
        await session.start(RawPing(scripted()))
    await session.wait_for_idle()
    return session


async def _sessions(n: int, side: str, measure: str) -> dict[str, float]:
    """In a child process: what ``n`` live sessions add.

    ``measure="heap"``: raw and handoff sessions are made in alternating batches in this
    one process, all kept alive, and the traced heap each batch adds is recorded; the
    result is the median over batches of (handoff batch - raw batch) / batch size, which
    cancels the caches and arenas both sides warm. Batches are small and many (40 pairs of
    5 for 200 sessions): a process-wide table that doubles (asyncio's set of all tasks:
    64 KiB, then 256 KiB, as the live sessions' tasks pass a power of two) lands whole on
    whichever batch crosses the line, and with 10 pairs two such lumps set the interval's
    upper bound; with 40 the median's interval is the per-session spread, not the lumps.
    ``measure="rss"``: ``n`` sessions of
    ``side`` only, untraced, and the RSS they add.
    """
    flow = ring_flow()
    for s in ("raw", "handoff") * 3:  # warm-up: lazy imports, caches, first-use allocations
        await (await _start(flow, s)).aclose()
    gc.collect()
    sessions: list[AgentSession[BenchContext]] = []
    if measure == "heap":
        batch = max(1, min(5, n // 40))
        added: dict[str, list[float]] = {"raw": [], "handoff": []}
        tracemalloc.start()
        for _ in range(max(1, n // batch)):
            for s in ("raw", "handoff"):
                gc.collect()
                before = tracemalloc.get_traced_memory()[0]
                sessions.extend([await _start(flow, s) for _ in range(batch)])
                gc.collect()
                added[s].append((tracemalloc.get_traced_memory()[0] - before) / batch)
        tracemalloc.stop()
        diff, lo, hi = paired_diff_ci(added["raw"], added["handoff"])
        out = {"raw": statistics.median(added["raw"]),
               "handoff": statistics.median(added["handoff"]),
               "difference": diff, "difference_lo": lo, "difference_hi": hi,
               "batches": len(added["raw"]), "batch": batch}
    else:
        base = _rss()
        sessions = [await _start(flow, side) for _ in range(n)]
        gc.collect()
        out = {"per_session": (_rss() - base) / n, "process_rss": _rss()}
    for session in sessions:
        await session.aclose()
    return out


def _child(n: int, side: str, measure: str) -> dict[str, float]:
    """Run one session measurement in a fresh interpreter (RSS and heap stay honest)."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--sessions-child", side, measure, str(n)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def sessions(result: BenchResult, quick: bool) -> None:
    n = 4 if quick else 200
    if quick:  # in-process: proves the code works, the figures mean little
        heap = asyncio.run(_sessions(n, "both", "heap"))
        rss = {side: asyncio.run(_sessions(n, side, "rss")) for side in ("raw", "handoff")}
    else:
        heap = _child(n, "both", "heap")
        rss = {side: _child(n, side, "rss") for side in ("raw", "handoff")}
    raw, ours, added = heap["raw"], heap["handoff"], heap["difference"]
    raw_rss, ours_rss = rss["raw"]["per_session"], rss["handoff"]["per_session"]
    base_rss = rss["handoff"]["process_rss"] - ours_rss * n
    per_session = max(ours_rss, ours)  # the larger of RSS and heap growth: conservative
    fit = int((BUDGET - base_rss) / max(per_session, 1))
    result.add("heap per live AgentSession: raw LiveKit", round(raw / 1024, 1), "KiB",
               detail=f"RSS {raw_rss / 1024:.0f} KiB each over {n} sessions of its own")
    result.add("heap per live AgentSession: handoff", round(ours / 1024, 1), "KiB",
               detail=f"RSS {ours_rss / 1024:.0f} KiB each over {n} sessions of its own")
    lo, hi = heap["difference_lo"], heap["difference_hi"]
    result.add("handoff adds per live session", round(added), "B",
               target=f"≤ {TARGET_SESSION_BYTES} B (CI upper bound)",
               met=at_most(hi, TARGET_SESSION_BYTES),
               detail=f"95% CI {lo:+,.0f}…{hi:+,.0f} B; "
                      f"median over {heap['batches']:.0f} alternating batches of "
                      f"{heap['batch']:.0f} sessions (raw, then handoff) kept alive in one process")
    result.add("handoff sessions in 2 GB (extrapolated)", fit, "sessions",
               detail=f"(2 GiB - {base_rss / 1024**2:.0f} MiB process baseline) ÷ "
                      f"{per_session / 1024:.0f} KiB (larger of RSS and heap growth per session, "
                      f"over {n} live sessions); extrapolated, not filled")
    result.extra["sessions"] = {"n": n, "raw_heap": raw, "handoff_heap": ours,
                                "handoff_added": added, "handoff_added_ci95": [lo, hi],
                                "raw_rss": raw_rss,
                                "handoff_rss": ours_rss, "base_rss": base_rss,
                                "fit_in_2gib_extrapolated": fit}


CALL_LINES = ("go", "look balance", "go")


async def _one_call(flow: Any, side: str) -> None:
    """A whole call, as a worker runs it: started, three caller lines, closed."""
    session = await _start(flow, side)
    for line in CALL_LINES:
        await session.run(user_input=line)
    await session.aclose()


async def _calls(n: int, side: str, warm: int = 10) -> dict[str, float]:
    """In a child process: the traced heap still held after ``n`` sequential calls of
    ``side``, per call, over the whole run and over each half."""
    flow = ring_flow()
    for _ in range(warm):  # warm-up: lazy imports, caches, first-use allocations
        await _one_call(flow, side)
    gc.collect()
    tracemalloc.start()
    held = [tracemalloc.get_traced_memory()[0]]
    for _half in range(2):
        for _ in range(n // 2):
            await _one_call(flow, side)
        gc.collect()
        held.append(tracemalloc.get_traced_memory()[0])
    tracemalloc.stop()
    return {"per_call": (held[2] - held[0]) / (n // 2 * 2),
            "first_half": (held[1] - held[0]) / (n // 2),
            "second_half": (held[2] - held[1]) / (n // 2), "calls": n // 2 * 2}


def sequential_calls(result: BenchResult, quick: bool) -> None:
    n, warm = (6, 2) if quick else (200, 10)
    held: dict[str, float] = {}
    for side in ("raw", "handoff"):
        got = asyncio.run(_calls(n, side, warm)) if quick else _child(n, side, "calls")
        label = "raw LiveKit" if side == "raw" else "handoff"
        held[side] = got["per_call"]
        result.add(f"heap held per ended call, {n} sequential calls: {label}",
                   round(got["per_call"]), "B",
                   detail=f"first half {got['first_half']:.0f} B/call, second half "
                          f"{got['second_half']:.0f} B/call (three lines, two handoffs, a "
                          f"tool call, then closed; after {warm} warm-up calls)")
        result.extra[f"sequential_calls_{side}"] = got
    result.add("handoff adds per ended call", round(held["handoff"] - held["raw"]), "B",
               detail="what an ended call leaves behind with handoff, minus with raw LiveKit")


def run(quick: bool = False) -> BenchResult:
    result = BenchResult("memory", "3. Memory per flow run and per session", quick=quick)
    per_run_by_flow(result, quick)
    ten_thousand(result, quick)
    ended_runs(result, quick)
    sessions(result, quick)
    sequential_calls(result, quick)
    result.notes.append("Heap = tracemalloc's traced Python allocations; RSS from /proc.")
    return result


if __name__ == "__main__":
    if sys.argv[1:2] == ["--sessions-child"]:
        quiet_livekit()
        side, measure, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
        measured = _calls(count, side) if measure == "calls" else _sessions(count, side, measure)
        print(json.dumps(asyncio.run(measured)))
    else:
        main(run)
