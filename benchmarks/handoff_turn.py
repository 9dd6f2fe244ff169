"""Handoff turn: the same conversation step through raw LiveKit and through handoff.

One step = a user line → the scripted model calls the transition tool → LiveKit hands
off to the next agent → the new agent's first reply (from ``on_enter``). Measured
around ``await session.run(user_input=...)``, which returns when that reply is done.

Both sides live in the same process and event loop, each on its own text-mode
``AgentSession`` with its own ``ScriptedLLM`` playing the same policy; the turns are
interleaved A/B in random order per pair, after a warm-up. The states go round a ring
(Ping → Pong → Pang → Ping …), so every measured turn is a real handoff. A second step kind,
an ordinary tool call (``lookup``) and its answer without a transition, shows the
per-turn cost of being inside a flow.

Every turn is checked, outside the timed region, to have done the same work on both
sides (same number of LLM requests, the expected agent active afterwards, and for
handoff the FSM state equal to the active agent).
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import AgentSession, RunResult, llm

from handoff.testing import ScriptedLLM

from ._common import BenchResult, main, median, paired_ratio_ci, percentile, ratio_ci
from ._flows import HISTORY, BenchContext, RawPing, RawPong, carried, ring_flow, scripted

TARGET_RATIO = 1.03


@dataclass
class Side:
    """One contestant: its session, its model and a check run after each turn."""

    name: str
    session: AgentSession[BenchContext]
    model: ScriptedLLM
    check: Callable[[], None]
    times: dict[str, list[float]] = field(default_factory=lambda: {"handoff": [], "ordinary": []})
    cpu: dict[str, list[float]] = field(default_factory=lambda: {"handoff": [], "ordinary": []})
    requests: dict[str, list[int]] = field(default_factory=lambda: {"handoff": [], "ordinary": []})


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


async def measure(turns: int, warmup: int, seed: int = 8) -> tuple[Side, Side]:
    """Run ``warmup + turns`` interleaved pairs of each step kind; return raw, handoff."""
    flow = ring_flow()
    rng = random.Random(seed)
    async with AgentSession[BenchContext]() as raw_session, \
            AgentSession[BenchContext]() as flow_session:
        raw_model = scripted()
        raw_session.userdata = BenchContext()
        opening = await raw_session.start(RawPing(raw_model), capture_run=True)
        await opening

        flow_model = scripted()
        run = await flow.start(flow_session, llm=flow_model, wait_opening=True)

        def check_raw() -> None:
            if raw_session.current_agent is None:
                raise RuntimeError("raw: no active agent")

        def check_flow() -> None:
            agent = flow_session.current_agent
            if run.in_transition or agent is None or run.state != agent.id:
                raise RuntimeError(f"handoff: FSM {run.state} != agent {agent and agent.id}")

        raw = Side("raw LiveKit", raw_session, raw_model, check_raw)
        ours = Side("handoff", flow_session, flow_model, check_flow)
        raw_model.turns.clear()
        flow_model.turns.clear()
        for i in range(warmup + turns):
            record = i >= warmup
            if i == warmup:
                gc.collect()
            for kind, line in (("handoff", f"go {i}"), ("ordinary", f"look {i}")):
                pair = [raw, ours]
                rng.shuffle(pair)
                for side in pair:
                    await _turn(side, kind, line, record)
        if len(run.log) != warmup + turns:
            raise RuntimeError(f"handoff: {len(run.log)} transitions logged, "
                               f"expected {warmup + turns}")
        return raw, ours


def _report(result: BenchResult, kind: str, raw: Side, ours: Side, target: bool) -> None:
    a, b = raw.times[kind], ours.times[kind]
    if raw.requests[kind] != ours.requests[kind]:
        raise RuntimeError(f"{kind}: the two sides made different LLM requests per turn")
    label = "handoff turn" if kind == "handoff" else "ordinary-tool turn"
    per_turn = raw.requests[kind][0] if raw.requests[kind] else 0
    ratio = median(b) / median(a)
    lo, hi = ratio_ci(a, b)
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    result.add(f"{label}: raw LiveKit median / p95",
               f"{median(a) / 1e3:.2f} / {percentile(a, 0.95) / 1e3:.2f} ms",
               detail=f"{len(a)} turns, {per_turn} LLM requests each")
    result.add(f"{label}: handoff median / p95",
               f"{median(b) / 1e3:.2f} / {percentile(b, 0.95) / 1e3:.2f} ms",
               detail=f"{len(b)} turns, {per_turn} LLM requests each")
    result.add(f"{label}: handoff ÷ raw (median)", round(ratio, 3), "x",
               target=f"≤ {TARGET_RATIO}" if target else None,
               met=(ratio <= TARGET_RATIO) if target else None,
               detail=f"95% CI {lo:.3f}-{hi:.3f}; paired median difference "
                      f"{median(diffs):+.0f} µs")
    paired, plo, phi = paired_ratio_ci(a, b)
    result.add(f"{label}: handoff ÷ raw (median of per-pair ratios)", round(paired, 3), "x",
               detail=f"95% CI {plo:.3f}-{phi:.3f}; each pair ran back to back")
    result.add(f"{label}: handoff ÷ raw (p95)",
               round(percentile(b, 0.95) / percentile(a, 0.95), 3), "x")
    ca, cb = raw.cpu[kind], ours.cpu[kind]
    cpu_ratio = median(cb) / median(ca)
    clo, chi = ratio_ci(ca, cb)
    result.add(f"{label}: handoff ÷ raw (thread CPU time, median)", round(cpu_ratio, 3), "x",
               detail=f"95% CI {clo:.3f}-{chi:.3f}; CPU time of the event-loop thread, less "
                      "sensitive to other load on the machine")
    result.extra[kind] = {
        "raw_us": {"median": median(a), "p95": percentile(a, 0.95)},
        "handoff_us": {"median": median(b), "p95": percentile(b, 0.95)},
        "ratio_median": ratio, "ratio_ci95": [lo, hi], "ratio_p95": percentile(b, 0.95)
        / percentile(a, 0.95), "paired_median_diff_us": median(diffs), "turns": len(a),
        "cpu_ratio_median": cpu_ratio, "cpu_ratio_ci95": [clo, chi],
        "paired_ratio_median": paired, "paired_ratio_ci95": [plo, phi],
    }


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
    turns, warmup = (20, 5) if quick else (600, 40)
    raw, ours = _run_async(measure(turns, warmup))
    result = BenchResult("handoff_turn", "1. Handoff turn: handoff vs raw LiveKit, interleaved A/B",
                         quick=quick)
    _report(result, "handoff", raw, ours, target=True)
    _report(result, "ordinary", raw, ours, target=False)
    raw_make, our_make = construction(*((2, 20) if quick else (15, 200)))
    result.add("making the next agent: raw `RawPong(...)` / handoff `run.make_agent(...)`",
               f"{raw_make:.0f} / {our_make:.0f} µs",
               detail=f"handoff adds {our_make - raw_make:+.0f} µs per handoff "
                      "(brief, history policy, transition tools, tool timeouts)")
    result.extra["make_agent_us"] = {"raw": raw_make, "handoff": our_make}
    result.notes.append(
        "Same process, same event loop, one text-mode AgentSession per side, the same "
        "ScriptedLLM policy; pairs run in random order after "
        f"{warmup} warm-up pairs. Turn = `await session.run(user_input=...)` until the new "
        "agent's first reply is done.")
    return result


def _run_async(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


if __name__ == "__main__":
    main(run)
