"""`make demo MODE=voice`: the call-centre conversation as audio, offline, end to end.

The caller's lines are spoken by espeak-ng into a simulated microphone; Silero VAD finds
where each one ends; pocketsphinx (its English model ships in the wheel) turns the speech
into text; the flow answers through a real LiveKit AgentSession, and each state speaks with
its own espeak-ng voice. Everything runs through LiveKit's real audio pipeline (VAD,
StreamAdapter STT, TTS, playout, turn taking); nothing needs a network or a key.

What is honest to say about it:
- pocketsphinx on synthetic speech is rough: the table at the end shows what was said and
  what it heard, word for word;
- the agent side is the deterministic ScriptedLLM, which advances by *turn*, not by the words
  heard: a misheard line still gets its scripted answer (a real LLM would read the words);
- the microphone and speaker run at ``--speed`` times real time (2 by default, so the
  demo takes well under a minute); the WAV is written at normal speed.

    python -m examples.callcenter.voice_demo [--wav call.wav] [--speed 2]

writes the call as a stereo WAV (caller left, agents right): ``aplay call.wav`` or any
audio player plays it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livekit.agents import AgentSession, ConversationItemAddedEvent

from handoff import State
from handoff.offline import EspeakTTS, PocketSphinxSTT, espeak_available, pocketsphinx_available
from handoff.testing import ScriptedLLM, Turn
from handoff.testing.audio import CallerAudioInput, RealtimeAudioOutput, stereo_recording
from handoff.testing.scripted import ReplyLike

from .demo import AGENT_SCRIPT, CALLER
from .flow import Call, flow

CALLER_VOICE = "en-us+f2"  # the espeak voice pocketsphinx hears best (about 40 % of words)
VOICES = {  # one espeak-ng voice per state: the caller hears who is speaking
    "Greeter": "en-us",
    "Triage": "en-us+f3",
    "Billing": "en-gb-scotland",
    "Wrapup": "en-us+f3",
    "Escalation": "en-029",
}
AGENT_WPM = 190
CALLER_WPM = 130


def script_by_turn(script: list[Any]) -> list[list[Any]]:
    """The agent script cut into what answers each caller turn (the opening first).

    A turn's answer ends with a plain line of text: that is where the agent speaks and
    waits for the caller.
    """
    turns: list[list[Any]] = [[]]
    for reply in script:
        turns[-1].append(reply)
        if isinstance(reply, str):
            turns.append([])
    return [t for t in turns if t]


@dataclass
class TurnScript:
    """A ScriptedLLM policy that answers caller turn *k* with the script's part *k*."""

    turns: list[list[Any]]
    turn: int = 0
    extra: list[str] = field(default_factory=list)

    def advance(self) -> None:
        self.turn += 1

    def exhausted(self) -> bool:
        return self.turn >= len(self.turns) or not self.turns[self.turn]

    def __call__(self, request: Turn) -> ReplyLike:
        if self.exhausted():
            # the VAD cut the caller's line in two, or STT heard a noise: an extra turn
            self.extra.append(request.last_user_text)
            return "Sorry, go on."
        return self.turns[self.turn].pop(0)


async def _until(ready: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"voice demo: timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _agent_id(session: AgentSession[Any]) -> str | None:
    with contextlib.suppress(RuntimeError):
        return session.current_agent.id
    return None


def _voice_for(state_cls: type[State[Any]]) -> dict[str, Any]:
    return {"tts": EspeakTTS(voice=VOICES.get(state_cls.state_name(), "en-us"),
                             words_per_minute=AGENT_WPM)}


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wav", type=Path, default=Path("callcenter-call.wav"))
    parser.add_argument("--speed", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.speed <= 0:
        parser.error("--speed must be positive")
    if not (espeak_available() and pocketsphinx_available()):
        print("voice demo: needs espeak-ng (apt-get install espeak-ng) and pocketsphinx "
              "(pip install 'livekit-handoff[voice]')", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.ERROR)
    from livekit.plugins import silero

    started = time.monotonic()
    print("voice: offline — caller lines spoken by espeak-ng, heard by pocketsphinx (rough "
          "accuracy on synthetic speech), Silero VAD for turns; agent side played by "
          "handoff.testing.ScriptedLLM, which advances by turn, not by the words heard; "
          f"audio runs at {args.speed:g}x real time.")
    stt = PocketSphinxSTT()
    await asyncio.to_thread(stt.prewarm)
    script = TurnScript(script_by_turn(AGENT_SCRIPT))
    flow.agent_options = _voice_for
    session: AgentSession[Call] = AgentSession(
        vad=silero.VAD.load(), stt=stt, tts=EspeakTTS(words_per_minute=AGENT_WPM),
        # turns end on the VAD (no turn-detector model offline), one LLM request per turn
        # (no preemptive generation), and no echo-cancellation warm-up: the simulated
        # microphone hears no echo
        turn_handling={"turn_detection": "vad", "endpointing": {"min_delay": 0.8},
                       "preemptive_generation": {"enabled": False}},
        aec_warmup_duration=None,
    )
    mic = CallerAudioInput(speed=args.speed, record=True)
    speaker = RealtimeAudioOutput(speed=args.speed, record=True, tag_with=lambda: _agent_id(session))
    session.input.audio = mic
    session.output.audio = speaker
    heard: list[str] = []
    spoken: list[tuple[str, str]] = []
    session.on("user_input_transcribed",
               lambda ev: heard.append(ev.transcript) if ev.is_final else None)

    def on_item(ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if item.type == "message" and item.role == "assistant" and item.text_content:
            spoken.append((_agent_id(session) or "?", item.text_content))

    session.on("conversation_item_added", on_item)

    def idle() -> bool:
        return (script.exhausted() and not run.in_transition and not mic.speaking
                and session.agent_state == "listening" and speaker.playing is None)

    rows: list[tuple[str, str]] = []
    try:
        run = await flow.start(session, llm=ScriptedLLM(script), wait_opening=True)
        await _until(idle, "the opening")
        script.advance()
        for state, text in spoken:
            print(f"  [{state}] agent: {text}")
        for line in CALLER:
            spoken.clear()
            before = len(heard)
            print(f"\ncaller says: {line}")
            utterance = await mic.say(line, voice=CALLER_VOICE, words_per_minute=CALLER_WPM)
            await utterance.finished.wait()
            await _until(lambda before=before: len(heard) > before, "the transcript")  # type: ignore[misc]
            await _until(idle, "the agent's answer")
            said = " / ".join(heard[before:])
            rows.append((line, said))
            print(f"  STT heard: {said or '(nothing)'}")
            for state, text in spoken:
                print(f"  [{state}] agent: {text}")
            script.advance()
        print(f"\nfinal state: {run.state}; transitions: "
              + ", ".join(f"{r.source}→{r.target}" for r in run.log))
    finally:
        mic.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.aclose(), 15)
        await speaker.aclose()
        flow.agent_options = None

    pcm, rate = stereo_recording(mic, speaker)
    with wave.open(str(args.wav), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    seconds = len(pcm) / 4 / rate
    print(f"\nwrote {args.wav} ({seconds:.1f} s of stereo audio: caller left, agents right); "
          f"play it with `aplay {args.wav}`")
    words_said = sum(len(said.split()) for said, _ in rows)
    words_heard = sum(len(set(said.lower().split()) & set(h.lower().split())) for said, h in rows)
    print(f"STT: {words_heard} of {words_said} spoken words recognised (bag of words)"
          + (f"; {len(script.extra)} extra turn(s) from split or misheard speech"
             if script.extra else ""))
    print(f"ran in {time.monotonic() - started:.1f} s")
    visited = {flow.initial} | {r.target for r in run.log}
    return 0 if visited == set(flow.states) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
