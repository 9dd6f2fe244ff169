"""Real audio for tests, without a room: an espeak-ng TTS, a caller's microphone, a speaker.

Three pieces that plug into a plain ``AgentSession`` so its audio path runs for real
(VAD, TTS, playout, interruption), offline and without LiveKit server::

    caller = CallerAudioInput()
    speaker = RealtimeAudioOutput()
    session = AgentSession(vad=silero.VAD.load(), tts=EspeakTTS())
    session.input.audio = caller          # set before session.start(), like console mode
    session.output.audio = speaker
    ...
    said = await caller.say("Hold on, wait a moment.")   # espeak-ng speech into the mic
    await said.finished

- :class:`EspeakTTS` is a livekit ``tts.TTS`` (non-streaming: LiveKit wraps it in a
  ``StreamAdapter`` and synthesises sentence by sentence) that runs the ``espeak-ng``
  binary and emits its PCM at espeak-ng's own sample rate.
- :class:`CallerAudioInput` is an ``io.AudioInput`` that yields 20 ms frames paced by a
  real-time clock: silence, unless speech was queued with :meth:`~CallerAudioInput.say`
  or :meth:`~CallerAudioInput.push`.
- :class:`RealtimeAudioOutput` is an ``io.AudioOutput`` that plays what it captures
  against the wall clock (the agent is "speaking" for the audio's duration), honours
  ``clear_buffer()``, ``pause()``/``resume()``, and reports each segment's playback
  exactly once, as the base class requires; it keeps a record of every segment.

espeak-ng is a Debian package (``apt-get install espeak-ng``); :func:`espeak_available`
tells whether it is installed.
"""

from __future__ import annotations

import asyncio
import io as _io
import itertools
import shutil
import time
import wave
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from livekit import rtc
from livekit.agents import (
    APIConnectionError,
    APIConnectOptions,
    APIStatusError,
    APITimeoutError,
    tts,
)
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS
from livekit.agents.voice import io

__all__ = [
    "ESPEAK_SAMPLE_RATE",
    "CallerAudioInput",
    "EspeakTTS",
    "PlayedSegment",
    "RealtimeAudioOutput",
    "Utterance",
    "espeak_available",
    "espeak_pcm",
]

ESPEAK_SAMPLE_RATE = 22050
"""The sample rate espeak-ng's own voices synthesise at."""

_ids = itertools.count()


def espeak_available() -> bool:
    """True when the ``espeak-ng`` binary is on the PATH."""
    return shutil.which("espeak-ng") is not None


@dataclass(frozen=True)
class Pcm:
    """Mono 16-bit PCM and its sample rate."""

    data: bytes
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.data) / 2 / self.sample_rate


async def espeak_pcm(
    text: str, *, voice: str = "en-us", words_per_minute: int = 175, timeout: float = 30.0
) -> Pcm:
    """Synthesise ``text`` with the espeak-ng binary; its WAV (``--stdout``) parsed to PCM."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise APIConnectionError("espeak-ng is not installed (apt-get install espeak-ng)",
                                 retryable=False)
    proc = await asyncio.create_subprocess_exec(
        binary, "--stdin", "--stdout", "-v", voice, "-s", str(words_per_minute),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(text.encode()), timeout)
    except BaseException as exc:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if isinstance(exc, TimeoutError):
            raise APITimeoutError(f"espeak-ng took more than {timeout} s") from exc
        raise
    if proc.returncode != 0:
        raise APIStatusError(f"espeak-ng failed ({proc.returncode}): {err.decode(errors='replace')}",
                             status_code=proc.returncode or -1, retryable=False)
    # espeak-ng writes to a pipe, so its WAV header cannot hold the real length: the
    # wave module reads the declared (huge) frame count and gets what is there
    with wave.open(_io.BytesIO(out), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise APIStatusError("espeak-ng produced audio that is not mono 16-bit PCM",
                                 retryable=False)
        rate = wav.getframerate()
        data = wav.readframes(wav.getnframes())
    return Pcm(data[: len(data) - len(data) % 2], rate)


# -- TTS ------------------------------------------------------------------------------------


class EspeakTTS(tts.TTS):
    """A livekit TTS that speaks with the local espeak-ng engine (non-streaming)."""

    def __init__(
        self,
        *,
        voice: str = "en-us",
        words_per_minute: int = 175,
        sample_rate: int = ESPEAK_SAMPLE_RATE,
    ) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=sample_rate,
            num_channels=1,
        )
        self.voice = voice
        self.words_per_minute = words_per_minute

    @property
    def model(self) -> str:
        return f"espeak-ng:{self.voice}"

    @property
    def provider(self) -> str:
        return "espeak-ng"

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _EspeakStream(tts=self, input_text=text, conn_options=conn_options)


class _EspeakStream(tts.ChunkedStream):
    def __init__(self, *, tts: EspeakTTS, input_text: str, conn_options: APIConnectOptions) -> None:
        super().__init__(tts=tts, input_text=input_text, conn_options=conn_options)
        self._espeak = tts

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        pcm = await espeak_pcm(self.input_text, voice=self._espeak.voice,
                               words_per_minute=self._espeak.words_per_minute,
                               timeout=self._conn_options.timeout)
        if pcm.sample_rate != self._espeak.sample_rate:
            raise APIStatusError(
                f"espeak-ng voice {self._espeak.voice!r} speaks at {pcm.sample_rate} Hz, "
                f"the TTS was declared at {self._espeak.sample_rate} Hz", retryable=False)
        output_emitter.initialize(request_id=f"espeak-{next(_ids)}", sample_rate=pcm.sample_rate,
                                  num_channels=1, mime_type="audio/pcm", frame_size_ms=20)
        output_emitter.push(pcm.data)
        output_emitter.flush()


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

    def __init__(self, *, sample_rate: int = 16000, frame_ms: int = 20,
                 label: str = "handoff.testing.caller") -> None:
        super().__init__(label=label)
        if not 10 <= frame_ms <= 20:
            raise ValueError("frame_ms must be between 10 and 20")
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        self.frame_duration = self.frame_samples / sample_rate
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
        due = self._started_at + self._frames * self.frame_duration
        if due > now:
            await asyncio.sleep(due - now)
        if self._closed:
            raise StopAsyncIteration
        self._frames += 1
        return rtc.AudioFrame(self._next_chunk(), self.sample_rate, 1, self.frame_samples)

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
        label: str = "handoff.testing.speaker",
    ) -> None:
        super().__init__(label=label, capabilities=io.AudioOutputCapabilities(pause=can_pause),
                         next_in_chain=None, sample_rate=sample_rate)
        self._tag_with = tag_with
        self.segments: list[PlayedSegment] = []
        """Every segment so far, in order."""
        self._queue: deque[PlayedSegment] = deque()  # unfinished segments, playing first
        self._capturing: PlayedSegment | None = None  # the segment frames go to until flush()
        self._dropping = False  # a cleared segment whose capture has not been flushed yet
        self._wake = asyncio.Event()
        self._resumed = asyncio.Event()
        self._resumed.set()
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
                tag=self._tag_with() if self._tag_with is not None else None)
            self.segments.append(seg)
            self._queue.append(seg)
        seg.pushed += frame.duration
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
            await asyncio.sleep(min(buffered, 0.02))
            if self._resumed.is_set():
                seg.played = min(seg.pushed, seg.played + time.monotonic() - t0)
        self._player = None

    def _finish(self, seg: PlayedSegment, *, interrupted: bool) -> None:
        self._queue.remove(seg)
        seg.interrupted = interrupted
        seg.finished_at = time.time()
        seg.done.set()
        self.on_playback_finished(playback_position=seg.played, interrupted=interrupted)
