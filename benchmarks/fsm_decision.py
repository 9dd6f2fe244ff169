"""FSM decision: one trigger through a handoff flow run vs a bare ``transitions`` trigger.

Three things are timed, interleaved block by block in one process:

- a bare ``transitions.Machine`` (``auto_transitions=False``) with the same two states
  and two triggers, ``model.to_pong()`` / ``model.to_ping()``: the floor;
- ``await run.go(trigger)`` on a pure flow run (no session): the whole path code takes
  (validity from the table → guard → snapshot → body → FSM commit → log record);
- the synchronous parts of that path, one by one, to show where the time goes.

Each block runs ``BLOCK`` ping-pong triggers; a figure is the median over blocks of the
mean time per trigger.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

from livekit.agents import RunContext
from transitions import Machine

from handoff import Flow, State, transition

from ._common import BenchResult, main, median
from ._flows import BenchContext

TARGET_US = 10.0


class GPing(State[BenchContext]):
    """Ping, with a guard on its way out."""

    instructions = "Ping."

    @transition(to="GPong", when=lambda c: c.lookups >= 0, refused="never")
    async def to_pong(self, ctx: RunContext[BenchContext]) -> None:
        """Call when the caller says go."""


class GPong(State[BenchContext]):
    """Pong."""

    instructions = "Pong."

    @transition(to="GPing")
    async def to_ping(self, ctx: RunContext[BenchContext]) -> None:
        """Call when the caller says go."""


def decision_flow() -> Flow[BenchContext]:
    return Flow("decision", context=BenchContext, initial=GPing, states=[GPing, GPong])


class _Model:
    state: str


def bare_machine() -> _Model:
    model = _Model()
    Machine(model=model, states=["GPing", "GPong"], initial="GPing", auto_transitions=False,
            transitions=[{"trigger": "to_pong", "source": "GPing", "dest": "GPong"},
                         {"trigger": "to_ping", "source": "GPong", "dest": "GPing"}])
    return model


def _time_sync(fn: Callable[[], Any], n: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(n // 2):
        fn()
        fn()
    return (time.perf_counter_ns() - start) / n / 1e3


async def _time_go(run: Any, n: int) -> float:
    go = run.go
    start = time.perf_counter_ns()
    for _ in range(n // 2):
        await go("to_pong")
        await go("to_ping")
    elapsed = (time.perf_counter_ns() - start) / n / 1e3
    run.log.clear()
    return elapsed


async def measure(blocks: int, block: int) -> dict[str, list[float]]:
    flow = decision_flow()
    run = flow.new_run()
    model = bare_machine()
    fsm = run._fsm  # the model the shared Machine moves (private: timing its parts)
    table = flow.table
    ctx = run.context

    def bare() -> None:
        model.trigger("to_pong" if model.state == "GPing" else "to_ping")

    def lookup_and_guard() -> None:
        edge = table[fsm.state]["to_pong" if fsm.state == "GPing" else "to_ping"]
        edge.transition.check_guard(ctx, {})

    def commit() -> None:  # the transitions trigger inside FlowRun._commit
        fsm.trigger("to_pong" if fsm.state == "GPing" else "to_ping")

    def snapshot() -> None:
        run._snapshot()

    sync: dict[str, Callable[[], None]] = {
        "bare": bare, "lookup_guard": lookup_and_guard, "commit": commit, "snapshot": snapshot,
    }
    out: dict[str, list[float]] = {k: [] for k in ("go", *sync)}
    for i in range(blocks + 2):  # two warm-up blocks
        gc.collect()
        results = {"go": await _time_go(run, block)}
        for name, fn in sync.items():
            results[name] = _time_sync(fn, block)
        if i >= 2:
            for k, v in results.items():
                out[k].append(v)
    assert run.state == "GPing" and fsm.state == "GPing"
    return out


def run(quick: bool = False) -> BenchResult:
    blocks, block = (3, 200) if quick else (30, 4000)
    times = asyncio.run(measure(blocks, block))
    go, bare = median(times["go"]), median(times["bare"])
    result = BenchResult("fsm_decision", "2. FSM decision: handoff flow run vs bare transitions",
                         quick=quick)
    result.add("bare transitions trigger", round(bare, 2), "µs",
               detail="Machine(auto_transitions=False), model.trigger(name)")
    result.add("handoff `await run.go(trigger)` (pure run)", round(go, 2), "µs",
               target=f"≤ {TARGET_US:g} µs", met=go <= TARGET_US,
               detail="table → guard → snapshot → body → transitions trigger → log record")
    result.add("handoff ÷ bare transitions", round(go / bare, 2), "x")
    result.add("part: table lookup + guard", round(median(times["lookup_guard"]), 2), "µs")
    result.add("part: context snapshot", round(median(times["snapshot"]), 2), "µs")
    result.add("part: transitions trigger on the run's model", round(median(times["commit"]), 2),
               "µs", detail="what FlowRun._commit spends in transitions")
    result.notes.append(f"Median over {blocks} interleaved blocks of {block} triggers each.")
    result.extra = {k: {"median_us": median(v), "blocks": v} for k, v in times.items()}
    return result


if __name__ == "__main__":
    main(run)
