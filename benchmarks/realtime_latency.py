"""First audio after a handoff on a realtime (speech-to-speech) tier.

On a realtime model, a handoff turn is two generations in series: the one whose function
call asks for the handoff, then the new agent's first reply (LiveKit reuses the live
realtime session and updates its instructions, tools and chat context in between). What
the caller feels is the silence from the end of their line to the first audio of the new
agent. This benchmark measures that, caller's line → first agent audio frame played, for
three kinds of turn, interleaved in random order each round:

- ``ordinary``: the active agent answers (one generation);
- ``raw switch``: raw LiveKit agents on the realtime model, written LiveKit's way (a
  ``@function_tool`` returning the next ``Agent``, whose ``on_enter`` calls
  ``generate_reply``);
- ``handoff``: the same switch through handoff (a State's ``@transition``).

The model is the ScriptedRealtimeModel with the audio modality, its first audio coming
``RT_FIRST_AUDIO`` after each request (a *simulated* provider latency); the audio plays on
a real-time speaker (``RealtimeAudioOutput``). The caller's line is text (the scripted
model hears text), so no STT or VAD is involved: the figures are the realtime path's.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from livekit.agents import AgentSession

from handoff.testing import ScriptedRealtimeModel, Turn
from handoff.testing.audio import RealtimeAudioOutput
from handoff.testing.scripted import ReplyLike, as_reply

from ._common import BenchResult, main, median, paired_ratio_ci
from ._flows import BenchContext, RawPing, make_policy, ring_flow
from .voice_latency import _until

RT_FIRST_AUDIO = 0.30
"""Seconds from a request to the realtime model's first audio (simulated)."""
GO = "go ahead please"
HELLO = "hello there"
KINDS = ("ordinary", "raw switch", "handoff")
SPEAKER_SPEED = 8.0
"""Audio seconds the speaker plays per wall-clock second: the replies' tails play fast
(what is measured is when the first frame plays, which the speed does not change)."""


def delayed(policy: Callable[[Turn], ReplyLike]) -> Callable[[Turn], ReplyLike]:
    """The benchmarks' shared policy, each generation starting ``RT_FIRST_AUDIO`` late."""
    return lambda turn: replace(as_reply(policy(turn)), delay=RT_FIRST_AUDIO)


@dataclass
class Line:
    """One contestant: a text-mode session on the realtime model, with a speaker."""

    kind: str
    session: AgentSession[BenchContext]
    speaker: RealtimeAudioOutput
    busy: Callable[[], bool]
    latencies: list[float] = field(default_factory=list)

    def idle(self) -> bool:
        return (not self.busy() and self.speaker.playing is None
                and self.session.current_speech is None
                and all(s.done.is_set() for s in self.speaker.segments))


async def open_line(kind: str) -> Line:
    session: AgentSession[BenchContext] = AgentSession(userdata=BenchContext())
    speaker = RealtimeAudioOutput(speed=SPEAKER_SPEED)
    session.output.audio = speaker
    model = ScriptedRealtimeModel(delayed(make_policy()), modalities=["audio"])
    busy: Callable[[], bool]
    if kind == "handoff":
        run = await ring_flow().start(session, llm=model)
        busy = lambda: run.in_transition  # noqa: E731
    else:
        await session.start(RawPing(model))  # type: ignore[arg-type]  # any model LiveKit takes
        busy = lambda: False  # noqa: E731
    line = Line(kind, session, speaker, busy)
    await _until(lambda: bool(speaker.segments) and line.idle(), f"{kind}: the opening")
    return line


async def one_turn(line: Line, record: bool) -> None:
    """The caller's line; the latency is the line → the first agent audio frame played."""
    before = len(line.speaker.segments)
    started = time.time()
    line.session.generate_reply(user_input=GO if line.kind != "ordinary" else HELLO)
    await _until(lambda: len(line.speaker.segments) > before
                 and line.speaker.segments[before].started_at is not None, f"{line.kind}: audio")
    first = line.speaker.segments[before].started_at
    assert first is not None
    if record:
        line.latencies.append(first - started)
    await _until(line.idle, f"{line.kind}: the end of the turn")


async def measure(rounds: int, warmup: int) -> dict[str, Line]:
    lines = {kind: await open_line(kind) for kind in KINDS}
    rng = random.Random(17)
    try:
        for i in range(warmup + rounds):
            order = list(KINDS)
            rng.shuffle(order)
            for kind in order:  # one at a time: the lines never compete for the CPU
                await one_turn(lines[kind], record=i >= warmup)
    finally:
        for line in lines.values():
            await line.session.aclose()
            await line.speaker.aclose()
    return lines


def run(quick: bool) -> BenchResult:
    result = BenchResult("realtime_latency", "First audio after a handoff on a realtime tier",
                         quick=quick)
    rounds, warmup = (2, 0) if quick else (30, 2)
    lines = asyncio.run(measure(rounds, warmup))
    ms: dict[str, Any] = {kind: [x * 1000 for x in line.latencies] for kind, line in lines.items()}
    for kind in KINDS:
        result.add(f"{kind}: caller's line → first agent audio (median)", median(ms[kind]),
                   "ms", detail=f"{len(ms[kind])} turns")
    ratio, lo, hi = paired_ratio_ci(ms["raw switch"], ms["handoff"])
    result.add("realtime handoff turn: handoff ÷ raw LiveKit agent switch, first audio", ratio,
               "x", target="≤ 1.02 (CI upper bound)", met=hi <= 1.02,
               detail=f"median of per-round ratios, 95% CI {lo:.3f}-{hi:.3f}")
    ratio, lo, hi = paired_ratio_ci(ms["ordinary"], ms["handoff"])
    result.add("realtime handoff turn ÷ ordinary turn, first audio", ratio, "x",
               detail=f"a handoff waits for two generations; 95% CI {lo:.3f}-{hi:.3f}")
    result.notes.append(
        f"Simulated realtime provider: first audio {RT_FIRST_AUDIO * 1000:.0f} ms after each "
        "request (ScriptedRealtimeModel, audio modality, silent synthetic frames; the "
        f"speaker plays {SPEAKER_SPEED:g}x real time, which moves the end of a reply, not its "
        "first frame). Text caller lines, no STT/VAD. One live realtime session per line, "
        "reused across the handoffs. Each round runs the three kinds once, in random order.")
    return result


if __name__ == "__main__":
    main(run)
