"""FSM decision: one trigger through a handoff flow run vs a bare ``transitions`` trigger.

Three things are timed, interleaved block by block in one process:

- a bare ``transitions.Machine`` (``auto_transitions=False``) with the same three states
  and triggers in a ring, ``model.to_pong()`` …: the floor;
- ``await run.go(trigger)`` on a pure flow run (no session): the whole path code takes
  (validity from the table → guard → snapshot → body → FSM commit → log record);
- the synchronous parts of that path, one by one, to show where the time goes.

Each block runs ``block`` triggers round the ring; a figure is the median over blocks of
the mean time per trigger.
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
from handoff.move import snapshot

from ._common import BenchResult, at_most, main, median, median_ci
from ._flows import UNLIMITED, BenchContext

TARGET_US = 15.0
"""``run.go`` on the pure model, on the CI's upper bound of the median over blocks."""


class GPing(State[BenchContext]):
    """Ping, with a guard on its way out."""

    instructions = "Ping."

    @transition(to="GPong", when=lambda c: c.lookups >= 0, refused="never")
    async def to_pong(self, ctx: RunContext[BenchContext]) -> None:
        """Call when the caller says go."""


class GPong(State[BenchContext]):
    """Pong."""

    instructions = "Pong."

    @transition(to="GPang")
    async def to_pang(self, ctx: RunContext[BenchContext]) -> None:
        """Call when the caller says go."""


class GPang(State[BenchContext]):
    """Pang."""

    instructions = "Pang."

    @transition(to="GPing")
    async def to_ping(self, ctx: RunContext[BenchContext]) -> None:
        """Call when the caller says go."""


TRIGGERS = ("to_pong", "to_pang", "to_ping")


def decision_flow() -> Flow[BenchContext]:
    return Flow("decision", context=BenchContext, initial=GPing, states=[GPing, GPong, GPang],
                max_transitions=UNLIMITED)


class _Model:
    state: str


def bare_machine() -> Any:
    model = _Model()
    Machine(model=model, states=["GPing", "GPong", "GPang"], initial="GPing",
            auto_transitions=False,
            transitions=[{"trigger": "to_pong", "source": "GPing", "dest": "GPong"},
                         {"trigger": "to_pang", "source": "GPong", "dest": "GPang"},
                         {"trigger": "to_ping", "source": "GPang", "dest": "GPing"}])
    return model


def _time_sync(steps: tuple[Callable[[], Any], ...], n: int) -> float:
    a, b, c = steps
    start = time.perf_counter_ns()
    for _ in range(n // 3):
        a()
        b()
        c()
    return (time.perf_counter_ns() - start) / (n // 3 * 3) / 1e3


async def _time_go(run: Any, n: int) -> float:
    go = run.go
    start = time.perf_counter_ns()
    for _ in range(n // 3):
        await go("to_pong")
        await go("to_pang")
        await go("to_ping")
    elapsed = (time.perf_counter_ns() - start) / (n // 3 * 3) / 1e3
    run.log.clear()
    return elapsed


async def measure(blocks: int, block: int) -> dict[str, list[float]]:
    flow = decision_flow()
    run = flow.new_run()
    model = bare_machine()
    fsm: Any = run._fsm  # the model the shared Machine moves (private: timing its parts)
    table = flow.table
    ctx = run.context
    sources = ("GPing", "GPong", "GPang")

    def lookup_guard(state: str, trigger: str) -> Callable[[], None]:
        def step() -> None:
            table[state][trigger].transition.check_guard(ctx, {})
        return step

    def commit(trigger: str) -> Callable[[], object]:
        event = flow.machine.events[trigger]  # what FlowRun._commit asks of transitions
        return lambda: event.trigger(fsm)

    sync: dict[str, tuple[Callable[[], Any], ...]] = {
        "bare": (model.to_pong, model.to_pang, model.to_ping),
        "lookup_guard": tuple(lookup_guard(s, t) for s, t in zip(sources, TRIGGERS, strict=True)),
        "commit": tuple(commit(t) for t in TRIGGERS),
        "snapshot": (lambda: snapshot(run.context),) * 3,
    }
    out: dict[str, list[float]] = {k: [] for k in ("go", *sync)}
    for i in range(blocks + 2):  # two warm-up blocks
        gc.collect()
        results = {"go": await _time_go(run, block)}
        for name, steps in sync.items():
            results[name] = _time_sync(steps, block)
        if i >= 2:
            for k, v in results.items():
                out[k].append(v)
    if not (run.state == "GPing" and fsm.state == "GPing" and model.state == "GPing"):
        raise RuntimeError("the machines did not come back round the ring")
    return out


def run(quick: bool = False) -> BenchResult:
    blocks, block = (3, 200) if quick else (30, 4000)
    times = asyncio.run(measure(blocks, block))
    go, _, go_hi = median_ci(times["go"])
    bare = median(times["bare"])
    result = BenchResult("fsm_decision", "2. FSM decision: handoff flow run vs bare transitions",
                         quick=quick)
    result.add("bare transitions trigger", round(bare, 2), "µs",
               detail="Machine(auto_transitions=False), model.to_pong() etc.")
    result.add("handoff `await run.go(trigger)` (pure run)", round(go, 2), "µs",
               target=f"≤ {TARGET_US:g} µs (CI upper bound)", met=at_most(go_hi, TARGET_US),
               detail=f"95% CI upper bound {go_hi:.2f} µs; table → guard → snapshot → body "
                      "(not called when it only returns None; else under asyncio.timeout) → "
                      "transitions trigger → log record → loop check")
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
