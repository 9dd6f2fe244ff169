"""Real audio for tests, without a room: a caller's microphone and a speaker.

Two pieces that plug into a plain ``AgentSession`` so its audio path runs for real
(VAD, STT, TTS, playout, interruption), offline and without LiveKit server::

    caller = CallerAudioInput()
    speaker = RealtimeAudioOutput()
    session = AgentSession(vad=silero.VAD.load(), stt=PocketSphinxSTT(), tts=EspeakTTS())
    session.input.audio = caller          # set before session.start(), like console mode
    session.output.audio = speaker
    ...
    said = await caller.say("Hold on, wait a moment.")   # espeak-ng speech into the mic
    await said.finished

- :class:`CallerAudioInput` is an ``io.AudioInput`` that yields 20 ms frames paced by a
  real-time clock: silence, unless speech was queued with :meth:`~CallerAudioInput.say`
  or :meth:`~CallerAudioInput.push`. It can keep what it handed out (``record=True``).
- :class:`RealtimeAudioOutput` is an ``io.AudioOutput`` that plays what it captures
  against the wall clock (the agent is "speaking" for the audio's duration), honours
  ``clear_buffer()``, ``pause()``/``resume()``, and reports each segment's playback
  exactly once, as the base class requires; it keeps a record of every segment (and its
  audio with ``record=True``).

The offline speech providers (:class:`~handoff.offline.EspeakTTS`,
:class:`~handoff.offline.PocketSphinxSTT`) live in :mod:`handoff.offline`; the espeak names
are re-exported here for the tests that used them from this module.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from livekit import rtc
from livekit.agents.voice import io

from ..offline.espeak import ESPEAK_SAMPLE_RATE, EspeakTTS, Pcm, espeak_available, espeak_pcm

__all__ = [
    "ESPEAK_SAMPLE_RATE",
    "CallerAudioInput",
    "EspeakTTS",
    "Pcm",
    "PlayedSegment",
    "RealtimeAudioOutput",
    "Utterance",
    "espeak_available",
    "espeak_pcm",
]

# -- the caller's microphone ----------------------------------------------------------------


@dataclass
class Utterance:
    """Speech queued into a :class:`CallerAudioInput`; events follow its delivery."""

    text: str
    duration: float
    started: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when its first frame has been handed to the session."""
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when its last frame has been handed to the session."""
    started_at: float | None = None
    finished_at: float | None = None


@dataclass
class _Queued:
    samples: memoryview
    utterance: Utterance
    position: int = 0


class CallerAudioInput(io.AudioInput):
    """A microphone for tests: real-time paced frames, silence unless speech is queued.

    The clock starts at the first frame the session reads; frame *n* is handed out at
    ``start + n * frame_duration`` (late readers catch up, so the stream stays in real
    time on a loaded machine). Queued speech follows on from what is already queued.
    """

    def __init__(self, *, sample_rate: int = 16000, frame_ms: int = 20, speed: float = 1.0,
                 record: bool = False, label: str = "handoff.testing.caller") -> None:
        super().__init__(label=label)
        if not 10 <= frame_ms <= 20:
            raise ValueError("frame_ms must be between 10 and 20")
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        self.frame_duration = self.frame_samples / sample_rate
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        """Audio seconds handed out per wall-clock second (2.0: the call runs twice as fast)."""
        self.recording: bytearray | None = bytearray() if record else None
        """With ``record=True``: every sample handed out, silence included (the caller's track)."""
        self.started_at: float | None = None
        """time.time() when the session read the first frame (the call's time zero)."""
        self._queue: deque[_Queued] = deque()
        self._silence = bytes(self.frame_samples * 2)
        self._started_at: float | None = None
        self._frames = 0
        self._closed = False
        self.speech_frames = 0
        """Frames handed out that carried queued speech."""

    async def say(self, text: str, *, voice: str = "en-us", words_per_minute: int = 175) -> Utterance:
        """Queue ``text`` spoken by espeak-ng; returns once it is queued (not yet heard)."""
        pcm = await espeak_pcm(text, voice=voice, words_per_minute=words_per_minute)
        return self.push(pcm.data, pcm.sample_rate, text=text)

    def push(self, pcm: bytes, sample_rate: int, *, text: str = "") -> Utterance:
        """Queue mono 16-bit PCM (resampled to the input's rate) after what is queued."""
        if sample_rate != self.sample_rate:
            resampler = rtc.AudioResampler(input_rate=sample_rate, output_rate=self.sample_rate,
                                           num_channels=1,
                                           quality=rtc.AudioResamplerQuality.HIGH)
            frame = rtc.AudioFrame(pcm, sample_rate, 1, len(pcm) // 2)
            chunks = [bytes(f.data) for f in (*resampler.push(frame), *resampler.flush())]
            pcm = b"".join(chunks)
        utterance = Utterance(text=text, duration=len(pcm) / 2 / self.sample_rate)
        self._queue.append(_Queued(memoryview(pcm), utterance))
        return utterance

    def close(self) -> None:
        """End the stream: the session's next read stops."""
        self._closed = True

    @property
    def speaking(self) -> bool:
        """True while queued speech remains to be handed out."""
        return bool(self._queue)

    async def __anext__(self) -> rtc.AudioFrame:
        if self._closed:
            raise StopAsyncIteration
        now = time.monotonic()
        if self._started_at is None:
            self._started_at = now
            self.started_at = time.time()
        due = self._started_at + self._frames * self.frame_duration / self.speed
        if due > now:
            await asyncio.sleep(due - now)
        if self._closed:
            raise StopAsyncIteration
        self._frames += 1
        chunk = self._next_chunk()
        if self.recording is not None:
            self.recording += chunk
        return rtc.AudioFrame(chunk, self.sample_rate, 1, self.frame_samples)

    def _next_chunk(self) -> bytes:
        if not self._queue:
            return self._silence
        head = self._queue[0]
        utterance = head.utterance
        if head.position == 0:
            utterance.started_at = time.time()
            utterance.started.set()
        need = self.frame_samples * 2
        chunk = bytes(head.samples[head.position : head.position + need])
        head.position += len(chunk)
        self.speech_frames += 1
        if head.position >= len(head.samples):
            self._queue.popleft()
            utterance.finished_at = time.time()
            utterance.finished.set()
        return chunk + self._silence[: need - len(chunk)]


# -- the speaker ------------------------------------------------------------------------------


@dataclass
class PlayedSegment:
    """One playback segment of a :class:`RealtimeAudioOutput` (from first frame to flush)."""

    index: int
    tag: str | None
    """What ``tag_with`` returned when the segment began (e.g. the active agent's id)."""
    started_at: float | None = None
    """time.time() when its first frame started to play."""
    pushed: float = 0.0
    """Seconds of audio captured."""
    played: float = 0.0
    """Seconds of audio that played."""
    flushed: bool = False
    pauses: int = 0
    """How many times ``pause()`` was called while it was unfinished."""
    interrupted: bool = False
    finished_at: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    audio: bytearray | None = None
    """With ``record=True``: the mono 16-bit PCM captured, at ``sample_rate``."""
    sample_rate: int = 0

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


class RealtimeAudioOutput(io.AudioOutput):
    """A speaker for tests: captured audio plays out against a real-time clock.

    A segment runs from its first captured frame to ``flush()``; segments play one after
    the other, and one is complete when all its audio has played. ``clear_buffer()``
    stops playback where the playhead is and reports the segment (and any queued behind
    it) interrupted. Each segment the base class counted gets exactly one
    ``playback_finished``. Frames captured after a clear and before the next ``flush()``
    belong to the cleared segment and are dropped.
    """

    def __init__(
        self,
        *,
        sample_rate: int | None = None,
        can_pause: bool = True,
        tag_with: Callable[[], str | None] | None = None,
        speed: float = 1.0,
        record: bool = False,
        label: str = "handoff.testing.speaker",
    ) -> None:
        super().__init__(label=label, capabilities=io.AudioOutputCapabilities(pause=can_pause),
                         next_in_chain=None, sample_rate=sample_rate)
        self._tag_with = tag_with
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        """Audio seconds played per wall-clock second (match the caller input's)."""
        self._record = record
        self.segments: list[PlayedSegment] = []
        """Every segment so far, in order."""
        self._queue: deque[PlayedSegment] = deque()  # unfinished segments, playing first
        self._capturing: PlayedSegment | None = None  # the segment frames go to until flush()
        self._dropping = False  # a cleared segment whose capture has not been flushed yet
        self._wake = asyncio.Event()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._running = asyncio.Event()  # cleared by hold(): the device stalls, unseen by LiveKit
        self._running.set()
        self._player: asyncio.Task[None] | None = None

    @property
    def playing(self) -> PlayedSegment | None:
        """The segment at the playhead, if any."""
        return self._queue[0] if self._queue else None

    @property
    def paused(self) -> bool:
        return not self._resumed.is_set()

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        if self._dropping:
            return  # the base class counted this segment already, and it was cleared
        await super().capture_frame(frame)
        seg = self._capturing
        if seg is None:
            seg = self._capturing = PlayedSegment(
                index=len(self.segments),
                tag=self._tag_with() if self._tag_with is not None else None,
                audio=bytearray() if self._record else None, sample_rate=frame.sample_rate)
            self.segments.append(seg)
            self._queue.append(seg)
        seg.pushed += frame.duration
        if seg.audio is not None:
            seg.audio += (bytes(frame.data) if frame.num_channels == 1
                          else _first_channel(frame))
        if self._player is None:
            self._player = asyncio.create_task(self._play(), name="RealtimeAudioOutput.play")
        self._wake.set()

    def flush(self) -> None:
        super().flush()
        self._dropping = False
        if self._capturing is not None:
            self._capturing.flushed = True
            self._capturing = None
            self._wake.set()

    def clear_buffer(self) -> None:
        if not self._queue:
            return
        if self._capturing is not None:
            self._dropping = True  # until the flush that closes it
            self._capturing = None
        if self._player is not None:
            self._player.cancel()
            self._player = None
        while self._queue:
            self._finish(self._queue[0], interrupted=True)

    def pause(self) -> None:
        super().pause()
        if self._resumed.is_set():
            for seg in self._queue:
                seg.pauses += 1
        self._resumed.clear()

    def resume(self) -> None:
        super().resume()
        self._resumed.set()

    def hold(self) -> None:
        """Stall the playhead (a test's stuck device): audio stays buffered, nothing plays.

        Unlike ``pause()``, LiveKit is not told: the agent is still "speaking", so a test
        can make the caller talk over a segment without racing its end. ``release()``
        lets it play on.
        """
        self._running.clear()

    def release(self) -> None:
        """Let a held playhead move again."""
        self._running.set()

    async def aclose(self) -> None:
        if self._player is not None:
            self._player.cancel()
            self._player = None

    async def _play(self) -> None:
        # a simulated device: the playhead advances with the wall clock while audio is
        # buffered and the output is not paused
        while self._queue:
            seg = self._queue[0]
            await self._resumed.wait()
            await self._running.wait()
            if seg.started_at is None:
                seg.started_at = time.time()
                self.on_playback_started(created_at=seg.started_at)
            buffered = seg.pushed - seg.played
            if buffered <= 1e-6:
                if seg.flushed:
                    self._finish(seg, interrupted=False)
                    continue
                self._wake.clear()
                await self._wake.wait()
                continue
            t0 = time.monotonic()
            await asyncio.sleep(min(buffered, 0.02) / self.speed)
            if self._resumed.is_set() and self._running.is_set():
                elapsed = (time.monotonic() - t0) * self.speed
                seg.played = min(seg.pushed, seg.played + elapsed)
        self._player = None

    def _finish(self, seg: PlayedSegment, *, interrupted: bool) -> None:
        self._queue.remove(seg)
        seg.interrupted = interrupted
        seg.finished_at = time.time()
        seg.done.set()
        self.on_playback_finished(playback_position=seg.played, interrupted=interrupted)


def _first_channel(frame: rtc.AudioFrame) -> bytes:
    import numpy as np

    samples = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
    return samples[:, 0].copy().tobytes()


def stereo_recording(caller: CallerAudioInput, speaker: RealtimeAudioOutput) -> tuple[bytes, int]:
    """The call as stereo 16-bit PCM: the caller left, the agents right; (pcm, sample_rate).

    The caller's track is what the microphone handed out, sample for sample; each agent
    segment is placed where it started to play (on the call's clock, scaled by the speed)
    and cut where playback stopped (an interrupted segment keeps only what played). Both
    need ``record=True``.
    """
    import numpy as np

    if caller.recording is None or caller.started_at is None:
        raise ValueError("the caller input was not recording (record=True) or never read")
    rate = caller.sample_rate
    left = np.frombuffer(bytes(caller.recording), dtype=np.int16)
    right = np.zeros(len(left), dtype=np.int16)
    for seg in speaker.segments:
        if seg.audio is None:
            raise ValueError("the speaker was not recording (record=True)")
        if seg.started_at is None or not seg.audio:
            continue
        pcm = bytes(seg.audio)
        if seg.sample_rate != rate:
            resampler = rtc.AudioResampler(input_rate=seg.sample_rate, output_rate=rate,
                                           num_channels=1)
            frame = rtc.AudioFrame(pcm, seg.sample_rate, 1, len(pcm) // 2)
            pcm = b"".join(bytes(f.data) for f in (*resampler.push(frame), *resampler.flush()))
        audio = np.frombuffer(pcm, dtype=np.int16)[: int(seg.played * rate)]
        at = max(0, int((seg.started_at - caller.started_at) * caller.speed * rate))
        if at + len(audio) > len(right):
            right = np.concatenate([right, np.zeros(at + len(audio) - len(right), dtype=np.int16)])
            left = np.concatenate([left, np.zeros(len(right) - len(left), dtype=np.int16)])
        right[at : at + len(audio)] = audio
    return np.stack([left, right], axis=1).tobytes(), rate
