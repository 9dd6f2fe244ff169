"""Bytecodes per turn: where the CPU handoff adds to a turn goes, counted instead of timed.

The turn benchmark (:mod:`benchmarks.handoff_turn`) times each turn with the event-loop
thread's CPU clock; the time handoff adds follows the Python bytecodes it adds to the turn.
This counts them: ``sys.settrace`` with ``f_trace_opcodes`` on the event-loop thread, from
``session.run(user_input=...)`` to the reply, per code object. Nothing here is timed, so a
few turns suffice and two runs give the same figures.

Three sides in one process, each on its own text-mode ``AgentSession`` with the same
``ScriptedLLM`` policy, after the same warm-up:

- **raw LiveKit**: the ring's twin of plain ``Agent`` subclasses (as in ``handoff_turn``);
- **the floor**: raw LiveKit with one listener that does nothing (``handoff._listeners.listener``)
  on the four session events a flow run follows (``conversation_item_added``,
  ``function_tools_executed``, ``error``, ``close``): what following a turn through
  LiveKit's public events costs any layer, since LiveKit's ``EventEmitter.emit`` runs
  ``inspect.signature`` on every listener at every event;
- **handoff**: the ring flow, as ``handoff_turn`` builds it.

No target is judged on it: it explains the CPU rows of ``handoff_turn``.

    python -m benchmarks.bytecodes [--quick]
"""

from __future__ import annotations

import asyncio
import gc
import sys
import sysconfig
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

from livekit.agents.voice.events import EventTypes

from handoff._listeners import listener

from ._common import ROOT, BenchResult, main
from ._flows import ring_flow
from .handoff_turn import KINDS, LABELS, Side, flow_side, raw_side

SIDES = ("raw LiveKit", "floor", "handoff")
FOLLOWED: tuple[EventTypes, ...] = (
    "conversation_item_added", "function_tools_executed", "error", "close")
"""The session events a flow run listens to (``FlowRun.attach``), one listener for the four."""
WARMUP = 20
"""Rounds before counting: LiveKit's and handoff's caches filled, the first visits done."""
TOP = 8
"""How many of the functions handoff adds most to an ordinary turn the page shows."""

GROUPS = (
    ("LiveKit's event delivery", "`EventEmitter.emit` and the `inspect.signature` it runs "
     "for every listener at every event"),
    ("handoff's own code", "`handoff/`"),
    ("the rest", "the standard library (asyncio's timers for the tool deadline, typing) "
     "and the rest of LiveKit, called from either"),
)
_DELIVERY = ("livekit/rtc/event_emitter.py", "inspect.py")
_STDLIB = Path(sysconfig.get_paths()["stdlib"])


class OpcodeCounter:
    """Counts the bytecodes each code object executes on this thread while :meth:`on`."""

    def __init__(self) -> None:
        self.ops: Counter[CodeType] = Counter()
        self.calls: Counter[CodeType] = Counter()

    def _opcode(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "opcode":
            self.ops[frame.f_code] += 1
        return self._opcode

    def _call(self, frame: FrameType, event: str, arg: Any) -> Any:
        self.calls[frame.f_code] += 1
        frame.f_trace_opcodes = True  # a coroutine resumed counts as a call: each step traced
        return self._opcode

    @contextmanager
    def on(self) -> Iterator[None]:
        """Count while inside; the thread's previous trace function (a coverage tool's)
        is put back after."""
        previous = sys.gettrace()
        sys.settrace(self._call)
        try:
            yield
        finally:
            sys.settrace(previous)


def where(code: CodeType) -> str:
    """``file:line name`` of a code object, the file relative to the project, the
    site-packages folder or the standard library (the same on every machine)."""
    path = Path(code.co_filename)
    name = code.co_filename
    if "site-packages" in path.parts:
        name = name.rsplit("site-packages/", 1)[-1]
    else:
        for base in (ROOT, _STDLIB):
            if path.is_relative_to(base):
                name = path.relative_to(base).as_posix()
                break
    return f"{name}:{code.co_firstlineno} {code.co_name}"


def group(place: str) -> str:
    """Which of :data:`GROUPS` a function (as :func:`where` names it) belongs to."""
    file = place.split(":", 1)[0]
    if file in _DELIVERY:
        return GROUPS[0][0]
    if file.startswith("handoff/"):
        return GROUPS[1][0]
    return GROUPS[2][0]


async def _counted(side: Side, kind: str, line: str, counter: OpcodeCounter | None) -> None:
    """One turn of ``kind`` on ``side``, counted when ``counter`` is given; checked after,
    outside the count (same LLM requests on every side, FSM state = active agent)."""
    before = len(side.model.turns)
    if counter is None:
        await side.session.run(user_input=line)
    else:
        with counter.on():
            await side.session.run(user_input=line)
    side.requests[kind].append(len(side.model.turns) - before)
    side.model.turns.clear()
    side.check()


def _ignore(event: object) -> None:
    """The floor's listener: told of each event, does nothing."""


async def floor_side(stack: AsyncExitStack) -> Side:
    """Raw LiveKit with one no-op listener on the four events a flow run follows."""
    side = await raw_side(stack)
    ignore = listener(_ignore)
    for name in FOLLOWED:
        side.session.on(name, ignore)
    side.name = SIDES[1]
    return side


Counts = dict[str, dict[str, Counter[str]]]
"""side → turn kind → function (:func:`where`) → bytecodes."""


async def measure(turns: int) -> tuple[Counts, dict[str, int]]:
    """Bytecodes per function over ``turns`` turns of each kind, by side; and the events
    the floor's listener was told of, by kind."""
    counts: Counts = {name: {kind: Counter() for kind in KINDS} for name in SIDES}
    events = dict.fromkeys(KINDS, 0)
    async with AsyncExitStack() as stack:
        sides = (await raw_side(stack), await floor_side(stack),
                 await flow_side(stack, SIDES[2], ring_flow()))
        for i in range(WARMUP + turns):
            if i == WARMUP:
                gc.collect()
                for side in sides:
                    side.requests = {k: [] for k in KINDS}
            for side in sides:
                for kind, line in (("handoff", f"go {i}"), ("ordinary", f"look {i}")):
                    counter = OpcodeCounter() if i >= WARMUP else None
                    await _counted(side, kind, line, counter)
                    if counter is not None:
                        for code, n in counter.ops.items():
                            counts[side.name][kind][where(code)] += n
                        if side.name == SIDES[1]:
                            events[kind] += counter.calls[_ignore.__code__]
    for kind in KINDS:
        requests = {side.name: side.requests[kind] for side in sides}
        if len({tuple(r) for r in requests.values()}) != 1:
            raise RuntimeError(f"{kind}: the sides made different LLM requests: {requests}")
    return counts, events


def added(ours: Mapping[str, int], base: Mapping[str, int], turns: int) -> dict[str, float]:
    """Per turn, the bytecodes each function runs more in ``ours`` than in ``base``."""
    return {k: (ours.get(k, 0) - base.get(k, 0)) / turns for k in set(ours) | set(base)
            if ours.get(k, 0) != base.get(k, 0)}


def by_group(extra: Mapping[str, float]) -> dict[str, float]:
    """``extra`` (per function) summed per group, in :data:`GROUPS` order."""
    totals = {name: 0.0 for name, _ in GROUPS}
    for place, n in extra.items():
        totals[group(place)] += n
    return totals


def _share(n: float, raw: float) -> str:
    return f"{n:+,.0f} ({n / raw * 100:+.2f} % of the raw turn)"


def report(counts: Counts, events: Mapping[str, int], turns: int, quick: bool) -> BenchResult:
    result = BenchResult("bytecodes", "Bytecodes per turn: where handoff's added CPU goes",
                         quick=quick)
    per_turn = {name: {kind: sum(counts[name][kind].values()) / turns for kind in KINDS}
                for name in SIDES}
    result.extra["per_turn"] = per_turn
    result.extra["events_per_turn"] = {kind: events[kind] / turns for kind in KINDS}
    for kind in KINDS:
        raw, floor, ours = (per_turn[name][kind] for name in SIDES)
        label = LABELS[kind]
        result.add(f"{label}: bytecodes, raw LiveKit / the floor / handoff",
                   f"{raw:,.0f} / {floor:,.0f} / {ours:,.0f}",
                   detail=f"per turn, {turns} turns each; the floor: raw LiveKit with one "
                          "no-op `listener` on the four events a flow run follows")
        result.add(f"{label}: the floor adds (following a turn through LiveKit's events)",
                   _share(floor - raw, raw),
                   detail=f"{events[kind] / turns:g} events per turn reach the listener")
        result.add(f"{label}: handoff adds over raw LiveKit", _share(ours - raw, raw),
                   detail=f"{ours - floor:+,.0f} beyond the floor"
                          + ("; fewer than raw: LiveKit's scan for method tools "
                             "(`find_function_tools`) reads only the names a State says can "
                             "hold one (`tool_scan_names`)"
                             if ours < raw else ""))
        extra = added(counts[SIDES[2]][kind], counts[SIDES[0]][kind], turns)
        ranked = sorted(extra.items(), key=lambda kv: (-kv[1], kv[0]))
        result.extra[kind] = {
            "groups": by_group(extra),
            "functions": dict(ranked[:30]),  # most added first
            "fewer": {k: n for k, n in ranked[:-11:-1] if n < 0},  # most first
        }
    _top_rows(result, result.extra["ordinary"]["groups"], result.extra["ordinary"]["functions"])
    result.notes += [
        "Counted, not timed: `sys.settrace` with `f_trace_opcodes` on the event-loop thread "
        "from `session.run(user_input=...)` to the reply, per function; the same ScriptedLLM "
        f"policy on the three sides, in one process, after {WARMUP} warm-up rounds. Two runs "
        "give the same ordinary turn within ~5 bytecodes and the same handoff turn within "
        "~100 (0.05 %): which of asyncio's timers are due at each pass of the loop follows "
        "the clock, LiveKit's `RunResult` asks its speech handles whether they are done in "
        "the order of a set (memory addresses), and weak references die when the collector "
        "runs. No target is judged on it: it explains the thread-CPU rows "
        "of `handoff_turn`, where the time a layer adds follows the bytecodes it adds "
        "(about the share above times the raw turn's CPU time there).",
        "The floor is what any layer pays that follows a turn through LiveKit's public "
        "events, however little its listener does: LiveKit's `EventEmitter.emit` runs "
        "`inspect.signature` on every listener at every event.",
    ]
    return result


def _top_rows(result: BenchResult, groups: Mapping[str, float],
              functions: Mapping[str, float]) -> None:
    """The groups of what handoff adds per ordinary turn, each with its functions among
    the :data:`TOP` that add most (``functions``: most first)."""
    top = list(functions.items())[:TOP]  # most added first
    for name, what in GROUPS:
        result.add(f"ordinary-tool turn, handoff adds in {name}", f"{groups[name]:+,.0f}",
                   "bytecodes", detail=what)
        for place, n in top:
            if group(place) == name:
                result.add(f"— `{place}`", f"{n:+,.0f}", "bytecodes")


def run(quick: bool = False) -> BenchResult:
    turns = 3 if quick else 10
    counts, events = asyncio.run(measure(turns))
    return report(counts, events, turns, quick)


if __name__ == "__main__":
    main(run)
