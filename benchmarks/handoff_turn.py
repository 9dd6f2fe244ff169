"""Handoff turn: the same conversation step through raw LiveKit and through handoff.

One step = a user line → the scripted model calls the transition tool → LiveKit hands
off to the next agent → the new agent's first reply (from ``on_enter``). Measured
around ``await session.run(user_input=...)``, which returns when that reply is done.

Both sides live in the same process and event loop, each on its own text-mode
``AgentSession`` with its own ``ScriptedLLM`` playing the same policy; the turns are
interleaved A/B, each pair back to back (who goes first drawn per pair), after a warm-up.
The states go round a ring (Ping → Pong → Pang → Ping …), so every measured turn is a
real handoff. A second step kind, an ordinary tool call (``lookup``) and its answer
without a transition, shows the per-turn cost of being inside a flow.

Every turn is checked, outside the timed region, to have done the same work on both
sides (same number of LLM requests, the expected agent active afterwards, and for
handoff the FSM state equal to the active agent).
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import AgentSession, RunResult, llm

from handoff import Flow, FlowRun
from handoff.testing import ScriptedLLM

from ._common import (
    BenchResult,
    add_turn_rows,
    at_most,
    layer_ratio,
    main,
    median,
    paired_figures,
)
from ._flows import HISTORY, BenchContext, RawPing, RawPong, carried, ring_flow, scripted

TARGET_CPU_RATIO = 1.01
"""handoff turn ÷ raw LiveKit, thread CPU time, on the CI's upper bound (DESIGN §8)."""
TARGET_ADDED_US = {"handoff": 100.0, "ordinary": 30.0}
"""µs handoff adds per turn over raw LiveKit: the median of per-pair differences of thread
CPU time, on the CI's upper bound (DESIGN §8)."""
KINDS = ("handoff", "ordinary")
PAIRS = 2000
"""Turn pairs per step kind: the per-pair differences spread over ~±300 µs (the interquartile
range of an A/A run, raw LiveKit against itself), so 600 pairs left the median's 95 %
interval ±40 to 60 µs wide, wider than the targets it is judged against; 2 000 pairs make it
about ±25 µs (~1 min more)."""


@dataclass
class Side:
    """One contestant: its session, its model and a check run after each turn."""

    name: str
    session: AgentSession[BenchContext]
    model: ScriptedLLM
    check: Callable[[], None]
    run: FlowRun[BenchContext] | None = None
    times: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    cpu: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    requests: dict[str, list[int]] = field(default_factory=lambda: {k: [] for k in KINDS})


async def _turn(side: Side, kind: str, line: str, record: bool) -> None:
    before = len(side.model.turns)
    cpu_start = time.thread_time_ns()
    start = time.perf_counter_ns()
    result: RunResult[Any] = await side.session.run(user_input=line)
    elapsed = time.perf_counter_ns() - start
    cpu = time.thread_time_ns() - cpu_start
    requests = len(side.model.turns) - before
    side.model.turns.clear()
    side.check()
    if not result.events:
        raise RuntimeError(f"{side.name}: a turn without events")
    if record:
        side.times[kind].append(elapsed / 1e3)  # µs
        side.cpu[kind].append(cpu / 1e3)
        side.requests[kind].append(requests)


async def raw_side(stack: AsyncExitStack) -> Side:
    """Raw LiveKit agents (the ring's twin), started, their opening done."""
    session = await stack.enter_async_context(AgentSession[BenchContext]())
    model = scripted()
    session.userdata = BenchContext()
    await (await session.start(RawPing(model), capture_run=True))

    def check() -> None:
        if session.current_agent is None:
            raise RuntimeError("raw: no active agent")

    model.turns.clear()
    return Side("raw LiveKit", session, model, check)


Starter = Callable[[AgentSession[BenchContext], ScriptedLLM], Awaitable[FlowRun[BenchContext]]]


async def flow_side(stack: AsyncExitStack, name: str, flow: Flow[BenchContext],
                    start: Starter | None = None) -> Side:
    """A run of ``flow`` on its own session, started by ``start`` (default ``flow.start``),
    its opening done."""
    session = await stack.enter_async_context(AgentSession[BenchContext]())
    model = scripted()
    if start is None:
        run = await flow.start(session, llm=model, wait_opening=True)
    else:
        run = await start(session, model)

    def check() -> None:
        agent = session.current_agent
        if run.in_transition or agent is None or run.state != agent.id:
            raise RuntimeError(f"{name}: FSM {run.state} != agent {agent and agent.id}")

    model.turns.clear()
    return Side(name, session, model, check, run=run)


async def interleave(sides: Sequence[Side], turns: int, warmup: int, seed: int = 8,
                     between: Callable[[], None] | None = None) -> None:
    """``warmup + turns`` rounds; in each, every side takes the same handoff turn back to
    back (in an order drawn per round), then the same ordinary-tool turn. ``between`` runs
    after each round, outside any timed turn."""
    rng = random.Random(seed)
    order = list(sides)
    for i in range(warmup + turns):
        record = i >= warmup
        if i == warmup:
            gc.collect()
        for kind, line in (("handoff", f"go {i}"), ("ordinary", f"look {i}")):
            rng.shuffle(order)
            for side in order:
                await _turn(side, kind, line, record)
        if between is not None:
            between()
    for side in sides:
        if side.run is not None and len(side.run.log) != warmup + turns:
            raise RuntimeError(f"{side.name}: {len(side.run.log)} transitions logged, "
                               f"expected {warmup + turns}")


async def measure(turns: int, warmup: int, seed: int = 8) -> tuple[Side, Side]:
    """Run ``warmup + turns`` interleaved pairs of each step kind; return raw, handoff."""
    async with AsyncExitStack() as stack:
        raw = await raw_side(stack)
        ours = await flow_side(stack, "handoff", ring_flow())
        await interleave((raw, ours), turns, warmup, seed)
        return raw, ours


LABELS = {"handoff": "handoff turn", "ordinary": "ordinary-tool turn"}


def added(raw: Side, ours: Side, kind: str) -> dict[str, Any]:
    """What ``ours`` adds to ``raw`` per ``kind`` turn: the paired figures, wall and CPU."""
    if raw.requests[kind] != ours.requests[kind]:
        raise RuntimeError(f"{kind}: {raw.name} and {ours.name} made different LLM requests")
    return paired_figures(raw.times[kind], ours.times[kind], raw.cpu[kind], ours.cpu[kind],
                          raw.requests[kind])


def _report(result: BenchResult, kind: str, raw: Side, ours: Side) -> None:
    fig = added(raw, ours, kind)
    label = LABELS[kind]
    add_turn_rows(result, label, ("raw LiveKit", "handoff"), fig, TARGET_ADDED_US[kind])
    ratio, lo, hi = fig["cpu_paired_ratio"]
    result.add(f"{label}: handoff ÷ raw, thread CPU time", layer_ratio(ratio, lo, hi),
               target=f"≤ {TARGET_CPU_RATIO} (CI upper bound)" if kind == "handoff" else None,
               met=at_most(hi, TARGET_CPU_RATIO) if kind == "handoff" else None,
               detail=f"median of per-pair ratios {ratio:.3f}; CPU time of the event-loop "
                      "thread, less sensitive to other load on the machine")
    ratio, lo, hi = fig["paired_ratio"]
    result.add(f"{label}: handoff ÷ raw, wall clock", layer_ratio(ratio, lo, hi),
               detail=f"median of per-pair ratios {ratio:.3f}; ratio of medians "
                      f"{fig['ratio_median']:.3f} (95% CI {fig['ratio_ci95'][0]:.3f}-"
                      f"{fig['ratio_ci95'][1]:.3f})")
    result.extra[kind] = fig


def construction(rounds: int, block: int) -> tuple[float, float]:
    """µs to make the next agent: handoff's ``run.make_agent`` vs the raw ``RawPong(...)``.

    The same carried history (six messages) and the same LLM; interleaved blocks; the
    median over blocks of the mean per agent. This is the step of a handoff turn where
    the two sides run different code of their own (LiveKit's ``Agent.__init__`` is in both).
    """
    flow = ring_flow()
    model = scripted()
    run = flow.new_run(llm=model)
    history = llm.ChatContext()
    for i in range(HISTORY):
        history.add_message(role="user" if i % 2 == 0 else "assistant", content=f"line {i}")
    policy = flow.history_policies["Pong"]
    ours: list[float] = []
    raw: list[float] = []
    for i in range(rounds + 1):
        start = time.perf_counter_ns()
        for _ in range(block):
            run.make_agent("Pong", chat_ctx=policy.carry(history), note=None)
        mid = time.perf_counter_ns()
        for _ in range(block):
            RawPong(model, chat_ctx=carried(history))
        end = time.perf_counter_ns()
        if i:
            ours.append((mid - start) / block / 1e3)
            raw.append((end - mid) / block / 1e3)
    return median(raw), median(ours)


def run(quick: bool = False) -> BenchResult:
    turns, warmup = (20, 5) if quick else (PAIRS, 40)
    raw, ours = _run_async(measure(turns, warmup))
    result = BenchResult("handoff_turn", "1. Handoff turn: handoff vs raw LiveKit, interleaved A/B",
                         quick=quick)
    for kind in KINDS:
        _report(result, kind, raw, ours)
    raw_make, our_make = construction(*((2, 20) if quick else (15, 200)))
    result.add("making the next agent: raw `RawPong(...)` / handoff `run.make_agent(...)`",
               f"{raw_make:.0f} / {our_make:.0f} µs",
               detail=(f"handoff's agent takes {our_make - raw_make:+.0f} µs to make "
                       "(brief, history policy, transition tools, tool timeouts)"
                       if our_make >= raw_make else
                       f"handoff's agent is made {raw_make - our_make:.0f} µs faster: LiveKit's "
                       "scan for method tools reads only the names a State says can hold one "
                       "(`tool_scan_names`); this is part of the turn, not the layer's cost, "
                       "which the whole turn above measures"))
    result.extra["make_agent_us"] = {"raw": raw_make, "handoff": our_make}
    result.notes.append(
        "Same process, same event loop, one text-mode AgentSession per side, the same "
        "ScriptedLLM policy; each pair's two turns run back to back (who goes first drawn "
        f"per pair) after {warmup} warm-up pairs. Turn = `await session.run(user_input=...)` "
        "until the new agent's first reply is done. Targets are judged on the upper bound "
        "of a 95% bootstrap interval, never on a point estimate.")
    return result


def _run_async(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


if __name__ == "__main__":
    main(run)
