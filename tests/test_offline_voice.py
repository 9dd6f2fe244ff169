"""The offline speech plugins plug into handoff's voice table like any LiveKit plugin."""

from __future__ import annotations

from handoff.offline import EspeakTTS, PocketSphinxSTT
from handoff.voice import VoiceConfig, Voices

from .test_bridge_line import Billing


class Scottish(Billing):
    """Billing, in another espeak-ng voice."""

    tts_provider = "handoff.offline:EspeakTTS"
    tts_voice = "en-gb-scotland"


def test_a_state_speaks_with_its_own_espeak_voice_from_the_voice_table() -> None:
    voices = Voices(VoiceConfig(tts_provider="handoff.offline:EspeakTTS", tts_voice="en-us",
                                stt_provider="handoff.offline:PocketSphinxSTT"))
    session = voices.session_options()
    assert isinstance(session["stt"], PocketSphinxSTT)
    assert isinstance(session["tts"], EspeakTTS) and session["tts"].voice == "en-us"
    state_tts = voices.agent_options(Scottish)["tts"]
    assert isinstance(state_tts, EspeakTTS) and state_tts.voice == "en-gb-scotland"
    assert voices.agent_options(Billing) == {}  # same voice as the flow: nothing to override
