"""The caller's voice interrupts the right agent during a handoff (Silero VAD, espeak-ng).

A real audio path without a room: the session's microphone is a
:class:`~handoff.testing.audio.CallerAudioInput` paced in real time, its speaker a
:class:`~handoff.testing.audio.RealtimeAudioOutput` that plays against the wall clock, its
TTS the espeak-ng engine and its VAD Silero (the ONNX model shipped inside
livekit-plugins-silero, loaded offline). The LLM is scripted.

The handoff is asked for in a *text* user turn; the interruption comes from the caller's
*voice*: espeak-ng speech pushed into the microphone while There's greeting plays. The
tests at the end add speech-to-text (:class:`~handoff.offline.PocketSphinxSTT`, offline):
the caller asks for the handoff by voice, and barge-in needs words recognised
(``min_words``).

How VAD alone interrupts in livekit-agents 1.8.9 (line numbers in
``livekit/agents/voice/agent_activity.py`` unless named otherwise):

- Without STT there is no adaptive interruption detector (``_resolve_interruption_detection``,
  l. 5277: ``can_gatekeep = self.stt is not None``), so interruption is plain VAD, nothing
  remote and nothing to download.
- Turn detection resolves to ``"vad"`` (a VAD, no STT), which keeps
  ``_interruption_by_audio_activity_enabled`` on (l. 470: only ``"manual"`` and
  ``"realtime_llm"`` turn it off). ``on_vad_inference_done`` (l. 2507) calls
  ``_interrupt_by_audio_activity`` once the caller has spoken ``interruption.min_duration``
  seconds (0.5 by default); ``min_words`` counts only with an STT (l. 2379).
- ``_interrupt_by_audio_activity`` *pauses* the speech instead of interrupting it when
  ``_pause_enabled()`` (l. 2409, 5005): ``interruption.resume_false_interruption`` (default
  True), a ``false_interruption_timeout`` (default 2.0 s) and an audio output that can
  pause. A paused speech becomes an interruption when a user turn is committed (l. 2861,
  source ``"user_turn"``), or resumes when the timeout passes without one.
- With VAD turn detection and no STT, the end of the caller's speech commits a user turn
  with an *empty* transcript (``audio_recognition.py`` l. 1584 and 1827 skip an empty
  transcript only when there is an STT); the active agent answers it.

So two configurations, both tested:

- ``turn_handling={"interruption": {"resume_false_interruption": False}}``: the VAD itself
  interrupts the greeting (l. 2427; ``SpeechHandle._interrupt_source == "audio_activity"``,
  a private attribute set once by ``SpeechHandle.interrupt``); the speaker is never paused.
- LiveKit's defaults: the VAD pauses the greeting, then the caller's committed (empty)
  turn interrupts it (source ``"user_turn"``).

In both, the interrupted speech is There's greeting (the new agent's), Here's words played
in full, the flow made exactly the one transition, There answers the caller's voice, and a
later text turn is answered by There. The control test plays the greeting to its end when
the caller stays silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import (
    AgentSession,
    APIStatusError,
    InterruptionOptions,
    RunResult,
    SpeechCreatedEvent,
    vad,
)
from livekit.agents.voice import io
from livekit.agents.voice.speech_handle import SpeechHandle

from handoff import Context, Flow, RunContext, State, transition
from handoff.offline import PocketSphinxSTT, pocketsphinx_available
from handoff.run import FlowRun
from handoff.testing import Reply, ScriptedLLM, Turn, call
from handoff.testing.audio import (
    ESPEAK_SAMPLE_RATE,
    CallerAudioInput,
    EspeakTTS,
    PlayedSegment,
    RealtimeAudioOutput,
    espeak_available,
    espeak_pcm,
)
from handoff.testing.scripted import ReplyLike

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")

HANDOFF_REQUEST = "put me through to There please"
GREETING = "Hello, this is There. I have your notes in front of me. Let me read them back."
NOT_CAUGHT = "Sorry?"
FOLLOW_UP = "are you still there?"
CALLER_WORDS = "Wait, hold on please."

# interruption options -> what interrupts the greeting (SpeechHandle._interrupt_source)
CONFIGS: dict[str, tuple[InterruptionOptions, str]] = {
    "vad_interrupts": ({"resume_false_interruption": False}, "audio_activity"),
    "livekit_defaults": ({}, "user_turn"),
}


class Line(Context):
    put_through: bool = False


class Here(State[Line]):
    """Answers the call."""

    instructions = "You are Here."

    @transition(to="There")
    async def put_through(self, ctx: RunContext[Line]) -> None:
        """Call when the caller asks for There."""
        ctx.userdata.put_through = True


class There(State[Line]):
    """Looks after the caller once put through."""

    instructions = "You are There."

    @transition(to="Here")
    async def back(self, ctx: RunContext[Line]) -> None:
        """Call when the caller wants Here again."""


flow = Flow("audio", context=Line, initial=Here, states=[Here, There], final=[There])


def make_policy() -> Callable[[Turn], ReplyLike]:
    """Here puts any caller turn through; There greets first, then answers."""
    greeted = False

    def policy(turn: Turn) -> ReplyLike:
        nonlocal greeted
        said = turn.last_user_text
        if "put_through" in turn.tool_names:  # Here
            if said and not turn.answering_tool:  # typed, or whatever STT heard
                return Reply(text="Putting you through.", calls=(call("put_through"),))
            return "Hello."
        if not greeted:  # There's first request: its greeting, on entering
            greeted = True
            return GREETING
        if said == FOLLOW_UP:
            return "Still here."
        return NOT_CAUGHT  # the caller's voice (no STT: a turn committed with no transcript)

    return policy


@pytest.fixture(scope="module")
def silero_vad() -> vad.VAD:
    from livekit.plugins import silero

    return silero.VAD.load()  # the ONNX model ships inside the plugin: nothing to download


@dataclass
class Call:
    run: FlowRun[Line]
    session: AgentSession[Line]
    caller: CallerAudioInput
    speaker: RealtimeAudioOutput
    speeches: list[tuple[str, SpeechHandle]]
    """Every speech handle, with the agent that was active when it was created."""


@contextlib.asynccontextmanager
async def audio_call(silero_vad: vad.VAD, interruption: InterruptionOptions,
                     stt: PocketSphinxSTT | None = None) -> AsyncIterator[Call]:
    session: AgentSession[Line] = AgentSession(
        vad=silero_vad,
        stt=stt,
        tts=EspeakTTS(words_per_minute=210),
        # turns end on the VAD (with an STT LiveKit would pick its turn-detector model), and
        # no echo-cancellation warm-up: the simulated microphone hears no echo, so LiveKit's
        # first 3 s of agent speech would otherwise discard the caller's audio
        turn_handling={"interruption": interruption, "turn_detection": "vad"},
        aec_warmup_duration=None,
    )
    caller = CallerAudioInput()
    speaker = RealtimeAudioOutput(tag_with=lambda: _agent_id(session))
    # set before start(), as console mode does; RoomIO is not created without a room
    session.input.audio = caller
    session.output.audio = speaker
    speeches: list[tuple[str, SpeechHandle]] = []

    def on_speech(ev: SpeechCreatedEvent) -> None:
        speeches.append((_agent_id(session) or "?", ev.speech_handle))

    session.on("speech_created", on_speech)
    try:
        run = await asyncio.wait_for(
            flow.start(session, llm=ScriptedLLM(make_policy()), wait_opening=True), 30)
        yield Call(run, session, caller, speaker, speeches)
    finally:
        caller.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.aclose(), 15)
        await speaker.aclose()


def _agent_id(session: AgentSession[Any]) -> str | None:
    with contextlib.suppress(RuntimeError):
        return session.current_agent.id
    return None


async def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def _greeting_segment(call: Call) -> PlayedSegment | None:
    """The first audio segment played while There was the active agent."""
    return next((s for s in call.speaker.segments if s.tag == "There"), None)


def _saying(call: Call, text: str) -> list[tuple[str, SpeechHandle]]:
    """The speeches whose chat items include an assistant message ``text``."""
    return [(agent, h) for agent, h in call.speeches
            if any(i.type == "message" and i.text_content == text for i in h.chat_items)]


async def _settle(call: Call) -> None:
    """Wait until no speech is pending and both sides are listening."""
    session = call.session
    await _until(lambda: all(h.done() for _, h in call.speeches) and not call.run.in_transition
                 and not call.caller.speaking and session.user_state == "listening"
                 and session.agent_state == "listening", 30, "the session to settle")


@pytest.mark.parametrize("config", list(CONFIGS))
async def test_caller_voice_during_the_greeting_interrupts_the_new_agent(
    silero_vad: vad.VAD, config: str
) -> None:
    interruption, source = CONFIGS[config]
    words = await espeak_pcm(CALLER_WORDS)  # ready before the moment it is needed
    async with audio_call(silero_vad, interruption) as call:
        run, session, speaker = call.run, call.session, call.speaker
        here_agent = session.current_agent
        assert run.state == "Here"
        handoff: asyncio.Future[RunResult[None]] = asyncio.ensure_future(
            session.run(user_input=HANDOFF_REQUEST))

        # There's greeting is playing: the caller starts talking over it
        await _until(lambda: (seg := _greeting_segment(call)) is not None and seg.played > 0.2,
                     30, "There's greeting to play")
        greeting = _greeting_segment(call)
        assert greeting is not None
        there_agent = session.current_agent
        assert run.state == "There" == there_agent.id
        utterance = call.caller.push(words.data, words.sample_rate, text=CALLER_WORDS)

        await asyncio.wait_for(greeting.done.wait(), 30)
        result = await asyncio.wait_for(handoff, 30)
        assert [e.type for e in result.events].count("agent_handoff") == 1
        await asyncio.wait_for(utterance.finished.wait(), 30)
        # with no STT the end of the caller's speech commits an empty user turn: wait for
        # its answer (which agent gives it is asserted below)
        await _until(lambda: any(h.done() for _, h in _saying(call, NOT_CAUGHT)), 30,
                     "the answer to the caller's voice")
        await _settle(call)

        # the speech the caller's voice cut was There's greeting, not Here's words
        assert greeting.interrupted and greeting.played < greeting.pushed
        assert utterance.started_at is not None and greeting.finished_at is not None
        assert utterance.started_at < greeting.finished_at
        cut = [(agent, h) for agent, h in call.speeches if h.interrupted]
        assert [agent for agent, _ in cut] == ["There"]
        assert cut[0][1]._interrupt_source == source
        assert greeting.pauses == (1 if source == "user_turn" else 0)  # VAD paused it first
        interrupted = [m for m in there_agent.chat_ctx.messages() if m.interrupted]
        assert [m.role for m in interrupted] == ["assistant"]
        assert (interrupted[0].text_content or "").startswith("Hello, this is There.")
        assert not any(m.interrupted for m in here_agent.chat_ctx.messages())
        here_segments = [s for s in speaker.segments if s.tag == "Here"]
        assert len(here_segments) == 2  # the opening and "Putting you through."
        assert not any(s.interrupted for s in here_segments)

        # the flow stayed consistent: one transition, the FSM and LiveKit agree
        assert run.state == "There" == session.current_agent.id
        assert session.current_agent is there_agent
        assert [r.trigger for r in run.log] == ["put_through"]
        assert run.context.put_through is True
        assert [agent for agent, _ in _saying(call, NOT_CAUGHT)] == ["There"]

        # and the call goes on with There
        follow: RunResult[None] = await asyncio.wait_for(session.run(user_input=FOLLOW_UP), 30)
        spoken = [e.item.text_content for e in follow.events if e.type == "message"]
        assert spoken == ["Still here."]
        assert [agent for agent, _ in _saying(call, "Still here.")] == ["There"]
        assert run.state == "There" == session.current_agent.id
        assert [r.trigger for r in run.log] == ["put_through"]


async def test_without_the_caller_speaking_the_greeting_plays_to_the_end(
    silero_vad: vad.VAD,
) -> None:
    async with audio_call(silero_vad, CONFIGS["vad_interrupts"][0]) as call:
        run, session = call.run, call.session
        await asyncio.wait_for(session.run(user_input=HANDOFF_REQUEST), 30)
        await _settle(call)

        greeting = _greeting_segment(call)
        assert greeting is not None and greeting.finished
        assert not greeting.interrupted and greeting.pauses == 0
        assert greeting.played == pytest.approx(greeting.pushed, abs=0.05)
        assert greeting.pushed > 2.0  # long enough for the caller to talk over it
        assert not any(h.interrupted for _, h in call.speeches)
        assert call.caller.speech_frames == 0
        assert not _saying(call, NOT_CAUGHT)
        assert run.state == "There" == session.current_agent.id
        assert [r.trigger for r in run.log] == ["put_through"]


# -- with speech-to-text: the caller is heard, and barge-in needs words -------------------

needs_stt = pytest.mark.skipif(not pocketsphinx_available(), reason="pocketsphinx is not installed")


@pytest.fixture(scope="module")
def sphinx() -> PocketSphinxSTT:
    stt = PocketSphinxSTT()
    stt.prewarm()  # the model loads once for the module's tests
    return stt


def _finals(session: AgentSession[Any]) -> list[str]:
    heard: list[str] = []
    session.on("user_input_transcribed",
               lambda ev: heard.append(ev.transcript) if ev.is_final else None)
    return heard


@needs_stt
async def test_the_caller_asks_for_the_handoff_by_voice(
    silero_vad: vad.VAD, sphinx: PocketSphinxSTT
) -> None:
    async with audio_call(silero_vad, {}, stt=sphinx) as call:
        run, session = call.run, call.session
        heard = _finals(session)
        here_agent = session.current_agent
        utterance = await call.caller.say(HANDOFF_REQUEST)
        await asyncio.wait_for(utterance.finished.wait(), 30)
        await _until(lambda: (seg := _greeting_segment(call)) is not None and seg.finished,
                     60, "There's greeting after a spoken request")
        await _settle(call)

        # what pocketsphinx heard is the user message Here's LLM answered with the move
        assert heard and all(heard), "STT produced no transcript for the caller's words"
        asked = [m.text_content for m in here_agent.chat_ctx.messages() if m.role == "user"]
        assert asked == heard
        assert [r.trigger for r in run.log] == ["put_through"]
        assert run.state == "There" == session.current_agent.id
        greeting = _greeting_segment(call)
        assert greeting is not None and not greeting.interrupted


@needs_stt
async def test_words_recognised_during_the_new_agents_greeting_interrupt_it(
    silero_vad: vad.VAD, sphinx: PocketSphinxSTT
) -> None:
    words = await espeak_pcm(CALLER_WORDS)
    # barge-in needs two recognised words: VAD alone no longer cuts the greeting
    async with audio_call(silero_vad, {"min_words": 2, "resume_false_interruption": False},
                          stt=sphinx) as call:
        run, session = call.run, call.session
        heard = _finals(session)
        handoff = asyncio.ensure_future(session.run(user_input=HANDOFF_REQUEST))
        await _until(lambda: (seg := _greeting_segment(call)) is not None and seg.played > 0.2,
                     30, "There's greeting to play")
        greeting = _greeting_segment(call)
        assert greeting is not None
        there_agent = session.current_agent
        # the greeting cannot end on its own while the caller speaks and STT decodes: only
        # the interruption can end it (no race with its length on a loaded machine)
        call.speaker.hold()
        utterance = call.caller.push(words.data, words.sample_rate, text=CALLER_WORDS)
        await asyncio.wait_for(greeting.done.wait(), 60)
        call.speaker.release()
        await asyncio.wait_for(handoff, 30)
        await asyncio.wait_for(utterance.finished.wait(), 30)
        await _until(lambda: any(h.done() for _, h in _saying(call, NOT_CAUGHT)), 60,
                     "the answer to the caller's words")
        await _settle(call)

        # the greeting was cut by the words (it did not play out), and they reached There
        assert greeting.interrupted and greeting.played < greeting.pushed
        assert len(heard) == 1 and len(heard[0].split()) >= 2, heard
        cut = [(agent, h) for agent, h in call.speeches if h.interrupted]
        assert [agent for agent, _ in cut] == ["There"]
        users = [m.text_content for m in there_agent.chat_ctx.messages() if m.role == "user"]
        assert users[-1] == heard[0]
        assert [agent for agent, _ in _saying(call, NOT_CAUGHT)] == ["There"]
        assert run.state == "There" == session.current_agent.id
        assert [r.trigger for r in run.log] == ["put_through"]


@needs_stt
async def test_pocketsphinx_recognises_espeak_speech_through_livekits_recognize() -> None:
    pcm = await espeak_pcm("hold on, hold on, wait a moment", voice="en-us+f2",
                           words_per_minute=130)
    frame = rtc.AudioFrame(pcm.data, pcm.sample_rate, 1, len(pcm.data) // 2)
    event = await PocketSphinxSTT().recognize([frame])
    text = event.alternatives[0].text
    assert len({"hold", "on", "wait", "a", "moment"} & set(text.split())) >= 3, text
    with pytest.raises(APIStatusError, match="only recognises English"):
        await PocketSphinxSTT().recognize([frame], language="fr")


# -- the audio pieces keep their contracts ---------------------------------------------------


def _tone(seconds: float, rate: int = 16000) -> rtc.AudioFrame:
    samples = int(seconds * rate)
    data = (np.sin(np.arange(samples) * 2 * np.pi * 440 / rate) * 8000).astype(np.int16)
    return rtc.AudioFrame(data.tobytes(), rate, 1, samples)


async def test_the_speaker_plays_in_real_time_and_reports_each_segment_once() -> None:
    speaker = RealtimeAudioOutput()
    finished: list[io.PlaybackFinishedEvent] = []
    speaker.on("playback_finished", finished.append)

    await speaker.capture_frame(_tone(0.2))
    speaker.flush()
    assert speaker.playing is not None and not speaker.playing.finished
    ev = await asyncio.wait_for(speaker.wait_for_playout(), 10)
    assert not ev.interrupted and ev.playback_position == pytest.approx(0.2, abs=0.01)

    # cleared mid-capture: reported interrupted at once, and the rest of that capture
    # (until its flush) is dropped rather than counted as a new segment
    await speaker.capture_frame(_tone(5.0))
    speaker.clear_buffer()
    await speaker.capture_frame(_tone(1.0))
    speaker.flush()
    ev = await asyncio.wait_for(speaker.wait_for_playout(), 10)
    assert ev.interrupted and ev.playback_position < 5.0

    # paused, the playhead stands still; resumed, it plays to the end
    await speaker.capture_frame(_tone(0.2))
    speaker.flush()
    speaker.pause()
    await asyncio.sleep(0.3)
    seg = speaker.segments[-1]
    assert seg.pauses == 1 and seg.played < 0.2 and not seg.finished
    speaker.resume()
    ev = await asyncio.wait_for(speaker.wait_for_playout(), 10)
    assert not ev.interrupted and ev.playback_position == pytest.approx(0.2, abs=0.01)

    assert [(s.pushed > 0, s.interrupted) for s in speaker.segments] == [
        (True, False), (True, True), (True, False)]
    assert [e.interrupted for e in finished] == [False, True, False]
    assert speaker.segments[1].pushed == pytest.approx(5.0)  # the dropped second not counted
    await speaker.aclose()


async def test_the_caller_input_paces_silence_then_speech_then_silence() -> None:
    mic = CallerAudioInput(sample_rate=16000, frame_ms=20)
    first = await mic.__anext__()
    assert (first.sample_rate, first.samples_per_channel) == (16000, 320)
    assert not np.frombuffer(bytes(first.data), np.int16).any()  # silence
    words = await espeak_pcm("Hello there.")
    assert words.sample_rate == ESPEAK_SAMPLE_RATE and words.duration > 0.3
    utterance = mic.push(words.data, words.sample_rate, text="Hello there.")
    assert utterance.duration == pytest.approx(words.duration, abs=0.01)
    frames = [await mic.__anext__() for _ in range(int(utterance.duration / 0.02) + 5)]
    assert utterance.started.is_set() and utterance.finished.is_set()
    assert mic.speech_frames == pytest.approx(utterance.duration / 0.02, abs=1)
    assert np.frombuffer(bytes(frames[len(frames) // 2].data), np.int16).any()  # speech
    assert not np.frombuffer(bytes(frames[-1].data), np.int16).any()  # silence again
    mic.close()
    with pytest.raises(StopAsyncIteration):
        await mic.__anext__()


async def test_the_espeak_tts_synthesises_at_its_sample_rate() -> None:
    engine = EspeakTTS()
    frames = [ev.frame async for ev in engine.synthesize("One, two, three.")]
    assert frames and {f.sample_rate for f in frames} == {ESPEAK_SAMPLE_RATE}
    assert sum(f.duration for f in frames) > 0.5
