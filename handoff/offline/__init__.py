"""Offline speech providers: espeak-ng (speech out) and pocketsphinx (speech in).

Both are real LiveKit plugins (``tts.TTS`` and ``stt.STT``) that need no network and no key,
so a whole STT → LLM → TTS call runs on this machine through LiveKit's real audio pipeline::

    from livekit.plugins import silero
    from handoff.offline import EspeakTTS, PocketSphinxSTT

    session = AgentSession(vad=silero.VAD.load(), stt=PocketSphinxSTT(), tts=EspeakTTS())

espeak-ng comes from Debian (``apt-get install espeak-ng``); pocketsphinx from PyPI with
its English model inside the wheel (``pip install 'livekit-handoff[voice]'``). Their
quality is that of offline engines: use them for demos and tests, real plugins in calls.
"""

from .espeak import ESPEAK_SAMPLE_RATE, EspeakTTS, Pcm, espeak_available, espeak_pcm
from .sphinx import SPHINX_SAMPLE_RATE, PocketSphinxSTT, pocketsphinx_available, to_sphinx_pcm

__all__ = [
    "ESPEAK_SAMPLE_RATE",
    "SPHINX_SAMPLE_RATE",
    "EspeakTTS",
    "Pcm",
    "PocketSphinxSTT",
    "espeak_available",
    "espeak_pcm",
    "pocketsphinx_available",
    "to_sphinx_pcm",
]
