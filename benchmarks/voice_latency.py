"""First-audio latency of a handoff turn, through LiveKit's real audio pipeline.

What a caller feels is the silence between the end of their speech and the first sound of
the agent. This benchmark measures exactly that, end of caller speech → first agent audio
frame played, for four kinds of turn, run as two back-to-back pairs each round (the
paired intervals below assume each pair shared the machine's load of its moment):

- ``ordinary``: the active agent answers (one LLM request);
- ``raw handoff``: raw LiveKit agents, written LiveKit's way (a ``@function_tool`` returning
  the next ``Agent``, whose ``on_enter`` calls ``generate_reply``): two LLM requests in series;
- ``handoff``: the same handoff through handoff (a State's ``@transition``);
- ``handoff + bridge``: the same with ``say=`` on the transition: the new agent's bridge line
  plays while its LLM request runs.

The audio path is real: the caller's words are espeak-ng speech in a real-time microphone,
Silero VAD finds where they end, LiveKit's StreamAdapter asks the STT for the final
transcript, the LLM answers, the TTS speaks, and a real-time speaker plays it. The providers
are *simulated* with fixed latencies, the published medians the issue states, so that the
differences come from the pipeline and handoff, not from a network:

- STT final transcript: ``STT_FINAL`` after the VAD's end of speech;
- LLM time to first token: ``LLM_TTFT`` per request (the whole reply arrives then);
- TTS time to first byte: ``TTS_TTFB``, then audio at real-time length.

LiveKit's own per-turn latency figures (``ChatMessage.metrics``: its ``e2e_latency`` of
the first agent message after the caller's, the end-of-turn and transcription delays, the
LLM TTFT and TTS TTFB of that message) are reported beside ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    AgentSession,
    APIConnectOptions,
    ConversationItemAddedEvent,
    LanguageCode,
    NotGivenOr,
    stt,
    tts,
    utils,
)

from handoff.offline import espeak_available, espeak_pcm
from handoff.testing import ScriptedLLM, Turn
from handoff.testing.audio import CallerAudioInput, RealtimeAudioOutput
from handoff.testing.scripted import ReplyLike, as_reply

from ._common import BenchResult, at_most, layer_ratio, main, median, paired_ratio_ci
from ._flows import BenchContext, RawPing, make_policy, ring_flow

STT_FINAL = 0.20
"""Seconds from the VAD's end of speech to the final transcript."""
LLM_TTFT = 0.42
"""Seconds from an LLM request to its first token."""
TTS_TTFB = 0.14
"""Seconds from a TTS request to its first audio byte."""
TTS_SAMPLE_RATE = 24000
SECONDS_PER_WORD = 0.25
BRIDGE = "One moment."
GO = "go ahead please"
HELLO = "hello there"
KINDS = ("ordinary", "raw handoff", "handoff", "handoff + bridge")
PAIRS = (("raw handoff", "handoff"), ("ordinary", "handoff + bridge"))
"""Each round runs these pairs, each pair's two turns back to back (which pair first, and
which turn first within a pair, drawn per round): the pairs the targets compare."""
ROUNDS = 60
"""Pairs of each kind in a full run (DESIGN §8: at least 60 for the first-audio CI)."""
TARGET_FIRST_AUDIO = 1.02
"""handoff ÷ raw LiveKit, first audio of a handoff turn, on the CI's upper bound."""
TARGET_BRIDGE = 1.05
"""A handoff turn with a bridge line ÷ an ordinary turn, on the CI's upper bound."""
_ids = itertools.count()


class SimulatedSTT(stt.STT):
    """A batch STT that hears what the benchmark says was spoken, ``STT_FINAL`` later."""

    def __init__(self) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self.spoken = ""

    async def _recognize_impl(
        self, buffer: utils.AudioBuffer, *, language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.SpeechEvent:
        await asyncio.sleep(STT_FINAL)
        return stt.SpeechEvent(type=stt.SpeechEventType.FINAL_TRANSCRIPT, alternatives=[
            stt.SpeechData(language=LanguageCode("en"), text=self.spoken)])


class SimulatedTTS(tts.TTS):
    """A TTS whose first byte comes ``TTS_TTFB`` after the request; a quiet tone as audio."""

    def __init__(self) -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=False),
                         sample_rate=TTS_SAMPLE_RATE, num_channels=1)

    def synthesize(self, text: str, *,
                   conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS) -> tts.ChunkedStream:
        return _ToneStream(tts=self, input_text=text, conn_options=conn_options)


class _ToneStream(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        await asyncio.sleep(TTS_TTFB)
        seconds = max(0.3, SECONDS_PER_WORD * len(self.input_text.split()))
        t = np.arange(int(seconds * TTS_SAMPLE_RATE)) / TTS_SAMPLE_RATE
        tone = (np.sin(2 * np.pi * 220 * t) * 3000).astype(np.int16).tobytes()
        output_emitter.initialize(request_id=f"tone-{next(_ids)}", sample_rate=TTS_SAMPLE_RATE,
                                  num_channels=1, mime_type="audio/pcm", frame_size_ms=20)
        output_emitter.push(tone)
        output_emitter.flush()


def delayed(policy: Callable[[Turn], ReplyLike]) -> Callable[[Turn], ReplyLike]:
    """The benchmarks' shared policy, each reply arriving ``LLM_TTFT`` after the request."""
    return lambda turn: replace(as_reply(policy(turn)), delay=LLM_TTFT)


@dataclass
class Line:
    """One contestant: a voice session with its microphone, speaker and idle test."""

    kind: str
    session: AgentSession[BenchContext]
    stt: SimulatedSTT
    mic: CallerAudioInput
    speaker: RealtimeAudioOutput
    busy: Callable[[], bool]
    latencies: list[float] = field(default_factory=list)
    livekit: dict[str, list[float]] = field(default_factory=lambda: {
        "e2e latency": [], "end of turn delay": [], "transcription delay": [],
        "LLM TTFT": [], "TTS TTFB": []})
    recording: bool = False
    answered: bool = True

    def idle(self) -> bool:
        """Nothing left to say or play (a bridge line and the reply behind it included)."""
        return (not self.busy() and not self.mic.speaking and self.speaker.playing is None
                and self.session.current_speech is None
                and all(s.done.is_set() for s in self.speaker.segments)
                and self.session.agent_state == "listening")


async def _until(ready: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"voice latency: timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def open_line(kind: str, vad: Any) -> Line:
    sim_stt = SimulatedSTT()
    session: AgentSession[BenchContext] = AgentSession(
        vad=vad, stt=sim_stt, tts=SimulatedTTS(), userdata=BenchContext(),
        # VAD turns, one LLM request per turn, no echo-cancellation warm-up (no echo here)
        turn_handling={"turn_detection": "vad", "preemptive_generation": {"enabled": False}},
        aec_warmup_duration=None,
    )
    mic, speaker = CallerAudioInput(), RealtimeAudioOutput()
    session.input.audio = mic
    session.output.audio = speaker
    model = ScriptedLLM(delayed(make_policy()))
    busy: Callable[[], bool]
    if kind == "raw handoff" or kind == "ordinary":
        await session.start(RawPing(model))
        busy = lambda: False  # noqa: E731
    else:
        run = await ring_flow(say=BRIDGE if kind == "handoff + bridge" else None).start(
            session, llm=model)
        busy = lambda: run.in_transition  # noqa: E731
    line = Line(kind, session, sim_stt, mic, speaker, busy)

    def on_item(ev: ConversationItemAddedEvent) -> None:
        # LiveKit's own figures of a measured turn: the caller's message, then the first
        # agent message after it (the one whose audio we time)
        item = ev.item
        if not line.recording or item.type != "message":
            return
        figures, keys = item.metrics, {}
        if item.role == "user":
            line.answered = False
            keys = {"end of turn delay": "end_of_turn_delay",
                    "transcription delay": "transcription_delay"}
        elif item.role == "assistant" and not line.answered:
            line.answered = True
            keys = {"e2e latency": "e2e_latency", "LLM TTFT": "llm_node_ttft",
                    "TTS TTFB": "tts_node_ttfb"}
        for name, key in keys.items():
            if key in figures:
                line.livekit[name].append(float(figures[key]))  # type: ignore[literal-required]

    session.on("conversation_item_added", on_item)
    # the opening: its audio has played to the end
    await _until(lambda: bool(speaker.segments) and all(s.done.is_set() for s in speaker.segments)
                 and line.idle(), f"{kind}: the opening")
    return line


async def one_turn(line: Line, speech: Any, record: bool) -> None:
    """The caller speaks; the latency is end of speech → first agent audio frame."""
    words = GO if line.kind != "ordinary" else HELLO
    line.stt.spoken = words
    before = len(line.speaker.segments)
    line.recording = record
    utterance = line.mic.push(speech[words].data, speech[words].sample_rate, text=words)
    await utterance.finished.wait()
    await _until(lambda: len(line.speaker.segments) > before
                 and line.speaker.segments[before].started_at is not None, f"{line.kind}: audio")
    first = line.speaker.segments[before]
    assert first.started_at is not None and utterance.finished_at is not None
    assert utterance.started_at is not None and first.started_at > utterance.started_at, (
        "audio of the previous turn was counted")
    if record:
        line.latencies.append(first.started_at - utterance.finished_at)
    await _until(line.idle, f"{line.kind}: the end of the turn")


async def close_line(line: Line) -> None:
    line.mic.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(line.session.aclose(), 15)
    await line.speaker.aclose()


async def measure(rounds: int, warmup: int) -> dict[str, Line]:
    from livekit.plugins import silero

    vad = silero.VAD.load()
    speech = {w: await espeak_pcm(w) for w in (GO, HELLO)}
    lines = {kind: await open_line(kind, vad) for kind in KINDS}
    rng = random.Random(17)
    try:
        for i in range(warmup + rounds):
            pairs = [list(pair) for pair in PAIRS]
            rng.shuffle(pairs)
            for pair in pairs:
                rng.shuffle(pair)  # who goes first; the two stay back to back
                for kind in pair:  # one at a time: the lines never compete for the CPU
                    await one_turn(lines[kind], speech, record=i >= warmup)
    finally:
        for line in lines.values():
            await close_line(line)
    return lines


def run(quick: bool) -> BenchResult:
    result = BenchResult("voice_latency", "7. First-audio latency through LiveKit's audio pipeline",
                         quick=quick)
    if not espeak_available():
        result.notes.append("espeak-ng is not installed: nothing measured")
        return result
    rounds, warmup = (1, 0) if quick else (ROUNDS, 2)
    lines = asyncio.run(measure(rounds, warmup))
    ms = {kind: [x * 1000 for x in line.latencies] for kind, line in lines.items()}
    for kind in KINDS:
        result.add(f"{kind}: end of caller speech → first agent audio (median)",
                   median(ms[kind]), "ms", detail=f"{len(ms[kind])} turns")
    ratio, lo, hi = paired_ratio_ci(ms["raw handoff"], ms["handoff"])
    result.add("handoff turn: handoff ÷ raw LiveKit, first audio", layer_ratio(ratio, lo, hi),
               target=f"≤ {TARGET_FIRST_AUDIO} (CI upper bound)",
               met=at_most(hi, TARGET_FIRST_AUDIO),
               detail=f"median of per-pair ratios {ratio:.3f} over {len(ms['handoff'])} "
                      "back-to-back pairs; both sides do the same LiveKit work, so a ratio "
                      "under 1 is noise")
    ratio, lo, hi = paired_ratio_ci(ms["ordinary"], ms["handoff + bridge"])
    result.add("handoff turn with a bridge line ÷ ordinary turn, first audio", round(ratio, 3),
               "x", target=f"≤ {TARGET_BRIDGE} (CI upper bound)", met=at_most(hi, TARGET_BRIDGE),
               detail=f"median of per-pair ratios, 95% CI {lo:.3f}-{hi:.3f}; "
                      f"{len(ms['ordinary'])} back-to-back pairs")
    ratio, lo, hi = paired_ratio_ci(ms["ordinary"], ms["handoff"])
    result.add("handoff turn without a bridge line ÷ ordinary turn, first audio", round(ratio, 3),
               "x", detail=f"what the bridge line saves: one LLM TTFT ({LLM_TTFT * 1000:.0f} ms); "
                           f"95% CI {lo:.3f}-{hi:.3f} (same round, not adjacent)")
    for kind in KINDS:
        figures = lines[kind].livekit
        shown = ", ".join(f"{name} {median(v) * 1000:.0f} ms" for name, v in figures.items() if v)
        result.add(f"{kind}: LiveKit's own metrics (medians)", shown or "n/a")
    result.notes.append(
        f"Simulated providers, fixed latencies: STT final {STT_FINAL * 1000:.0f} ms after the "
        f"VAD's end of speech, LLM TTFT {LLM_TTFT * 1000:.0f} ms per request (whole reply at "
        f"once), TTS first byte {TTS_TTFB * 1000:.0f} ms. Real: espeak-ng caller speech, Silero "
        "VAD, LiveKit's StreamAdapter, endpointing (0.5 s), playout in real time. Each round "
        "runs two pairs one after the other, each pair's turns back to back: raw LiveKit "
        "handoff with handoff's, and an ordinary turn with a bridged handoff (which pair "
        "first and which turn first drawn per round). A ratio is met only on its 95% CI's "
        "upper bound.")
    return result


if __name__ == "__main__":
    main(run)
