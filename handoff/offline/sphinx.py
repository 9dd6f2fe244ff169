"""pocketsphinx as a LiveKit STT: speech in, offline, with the model its wheel ships.

The ``pocketsphinx`` wheel on PyPI carries its US-English acoustic model, dictionary and
language model inside the package, so :class:`PocketSphinxSTT` recognises speech with no
download and no key. It is a *non-streaming* ``stt.STT``: an ``AgentSession`` given a VAD
wraps it in LiveKit's ``StreamAdapter``, which cuts the caller's audio at the VAD's end of
speech and asks for one final transcript per segment, the same path a batch provider takes.

Honest figures (this repository's 2-core machine, espeak-ng speech): about 0.6 s of CPU per
second of audio, and rough accuracy on synthetic speech ("my account number is one two three
four" → "there is one two three four"). It is for offline demos and tests of the audio
pipeline, not for production; a State's ``stt`` can name any LiveKit STT plugin.

Decoding runs in a worker thread (pocketsphinx releases the GIL), one utterance at a time per
instance; the model loads on first use or on :meth:`PocketSphinxSTT.prewarm`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from livekit import rtc
from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    APIStatusError,
    LanguageCode,
    NotGivenOr,
    stt,
    utils,
)

__all__ = ["SPHINX_SAMPLE_RATE", "PocketSphinxSTT", "pocketsphinx_available"]

SPHINX_SAMPLE_RATE = 16000
"""The sample rate of the bundled US-English acoustic model."""


def pocketsphinx_available() -> bool:
    """True when the ``pocketsphinx`` package (with its bundled model) can be imported."""
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return False
    return True


class PocketSphinxSTT(stt.STT):
    """A livekit STT over pocketsphinx's bundled US-English model (batch, offline).

    ``decoder_options`` go to ``pocketsphinx.Decoder`` (e.g. ``lm=``/``dict=`` for your own
    language model and dictionary, ``jsgf=`` for a grammar). Only English is supported: a
    ``language`` other than ``en``/``en-US`` fails the request (non-retryable).
    """

    def __init__(self, **decoder_options: Any) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._options = {"samprate": SPHINX_SAMPLE_RATE, **decoder_options}
        self._decoder: Any = None
        self._load_lock = threading.Lock()
        self._busy = asyncio.Lock()

    @property
    def model(self) -> str:
        return "pocketsphinx:en-us"

    @property
    def provider(self) -> str:
        return "pocketsphinx"

    def prewarm(self) -> None:
        """Load the model now (about 1 to 3 s) instead of on the first utterance."""
        self._load()

    def _load(self) -> Any:
        with self._load_lock:
            if self._decoder is None:
                try:
                    from pocketsphinx import Decoder
                except ImportError as exc:  # an optional extra
                    raise APIStatusError(
                        "PocketSphinxSTT needs the pocketsphinx package "
                        "(pip install 'livekit-handoff[voice]')", retryable=False) from exc
                self._decoder = Decoder(**self._options)
            return self._decoder

    def decode(self, pcm: bytes) -> str:
        """Recognise mono 16-bit PCM at 16 kHz (blocking); the words heard, or ''."""
        decoder = self._load()
        decoder.start_utt()
        decoder.process_raw(pcm, no_search=False, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return hyp.hypstr.strip() if hyp is not None else ""

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.SpeechEvent:
        if isinstance(language, str) and language.lower() not in ("en", "en-us"):
            raise APIStatusError(f"PocketSphinxSTT only recognises English, not {language!r}",
                                 retryable=False)
        pcm = to_sphinx_pcm(rtc.combine_audio_frames(buffer))
        async with self._busy:  # one decoder: utterances are decoded one after the other
            text = await asyncio.to_thread(self.decode, pcm)
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            request_id=f"sphinx-{time.monotonic_ns()}",
            alternatives=[stt.SpeechData(language=LanguageCode("en"), text=text)],
        )


def to_sphinx_pcm(frame: rtc.AudioFrame) -> bytes:
    """``frame`` as mono 16-bit PCM at 16 kHz (channels averaged, resampled when needed)."""
    if frame.num_channels > 1:
        import numpy as np

        samples = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
        mono = samples.mean(axis=1).astype(np.int16).tobytes()
        frame = rtc.AudioFrame(mono, frame.sample_rate, 1, len(mono) // 2)
    if frame.sample_rate == SPHINX_SAMPLE_RATE:
        return bytes(frame.data)
    resampler = rtc.AudioResampler(input_rate=frame.sample_rate, output_rate=SPHINX_SAMPLE_RATE,
                                   num_channels=1, quality=rtc.AudioResamplerQuality.HIGH)
    return b"".join(bytes(f.data) for f in (*resampler.push(frame), *resampler.flush()))
