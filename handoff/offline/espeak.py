"""espeak-ng as a LiveKit TTS: speech out, offline, from a Debian package.

:class:`EspeakTTS` is a livekit ``tts.TTS`` (non-streaming: LiveKit wraps it in a
``StreamAdapter`` and synthesises sentence by sentence) that runs the ``espeak-ng``
binary and emits its PCM at espeak-ng's own sample rate. Each State can speak with its own
espeak voice (``en-us``, ``en-gb``, ``en-us+f3``...; ``espeak-ng --voices`` lists them).
``apt-get install espeak-ng`` installs the engine; :func:`espeak_available` tells whether it is.
"""

from __future__ import annotations

import asyncio
import io as _io
import itertools
import shutil
import wave
from dataclasses import dataclass

from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    APIConnectionError,
    APIConnectOptions,
    APIStatusError,
    APITimeoutError,
    tts,
)

__all__ = ["ESPEAK_SAMPLE_RATE", "EspeakTTS", "Pcm", "espeak_available", "espeak_pcm"]

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
