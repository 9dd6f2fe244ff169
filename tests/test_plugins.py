"""Tiers and voices for any LiveKit plugin, built offline.

Every listed provider's LLM/STT/TTS object is made with the network cut: building one
must never connect (LiveKit plugins connect on first use). The options reach the plugin.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest
from livekit.agents import llm

from handoff import Context, Flow, State
from handoff.errors import PluginError
from handoff.plugins import default_key_env, make
from handoff.testing import ScriptedLLM
from handoff.tiers import TierConfig, Tiers
from handoff.voice import VoiceConfig, Voices
from handoff.worker import required_secrets


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Any attempt of the test's code to resolve a name or open a connection is recorded
    (as text) and refused.

    Only the test's own thread is cut off: the patch is process-wide, and a thread that
    an earlier test in this process left running (an exporter, a client's resolver) must
    neither fail here nor be blamed on the plugin under test.
    """
    attempts: list[str] = []
    here = threading.get_ident()

    def refusing(name: str, original: Any) -> Any:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != here:
                return original(*args, **kwargs)
            attempts.append(f"{name}{tuple(map(_shown, args))}")
            raise OSError("network is not allowed in this test")
        return refuse

    for owner, name in ((socket, "getaddrinfo"), (socket, "create_connection"),
                        (socket.socket, "connect")):
        monkeypatch.setattr(owner, name, refusing(name, getattr(owner, name)))
    return attempts


def _shown(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return type(value).__name__


def _keys(name: str) -> str:
    return f"key-of-{name}"


@pytest.mark.parametrize(
    ("provider", "model", "options", "module", "check"),
    [
        ("openai", "gpt-4o-mini", {"parallel_tool_calls": False}, "livekit.plugins.openai",
         lambda o: o.parallel_tool_calls is False),
        ("anthropic", "claude-3-5-haiku-latest", {"max_tokens": 77, "parallel_tool_calls": False},
         "livekit.plugins.anthropic", lambda o: o.max_tokens == 77 and o.parallel_tool_calls is False),
        ("google", "gemini-2.0-flash", {"top_p": 0.5}, "livekit.plugins.google",
         lambda o: o.top_p == 0.5),
        ("groq", "llama-3.3-70b-versatile", {"parallel_tool_calls": False}, "livekit.plugins.groq",
         lambda o: o.parallel_tool_calls is False),
    ],
)
async def test_a_tier_builds_any_provider_offline_with_its_options(
    offline: list[Any], provider: str, model: str, options: dict[str, Any], module: str,
    check: Any,
) -> None:
    tiers = Tiers({"t": TierConfig("t", model, provider=provider, temperature=0.3,
                                   options=options)}, secrets=_keys)
    made = tiers.llm("t")
    assert isinstance(made, llm.LLM) and type(made).__module__.startswith(module)
    assert made.model == model
    assert made._opts.temperature == 0.3 and check(made._opts)
    assert tiers.configs["t"].api_key_env == default_key_env(provider)
    assert tiers.is_configured("t")
    assert offline == []


async def test_a_factory_path_and_a_local_base_url_need_no_key(offline: list[Any]) -> None:
    tiers = Tiers({
        "local": TierConfig("local", "llama3.1", provider="livekit.plugins.openai:LLM.with_ollama",
                            base_url="http://localhost:11434/v1"),
        "compat": TierConfig("compat", "qwen", base_url="http://localhost:8080/v1"),
    }, secrets=lambda name: None)
    assert tiers.llm("local").model == "llama3.1" and tiers.llm("compat").model == "qwen"
    assert tiers.is_configured("local") and tiers.is_configured("compat")
    assert offline == []


def test_tiers_from_toml_with_provider_options_and_env(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.handoff.tiers.smart]\nprovider = "anthropic"\nmodel = "claude-x"\n'
        '[tool.handoff.tiers.smart.options]\nmax_tokens = 256\n'
        '[tool.handoff.tiers.fast]\nmodel = "gpt-4o-mini"\n')
    tiers = Tiers.load(tmp_path, environ={"HANDOFF_TIER_FAST_PROVIDER": "groq"})
    smart, fast = tiers.configs["smart"], tiers.configs["fast"]
    assert (smart.provider, dict(smart.options), smart.api_key_env) == (
        "anthropic", {"max_tokens": 256}, "ANTHROPIC_API_KEY")
    assert (fast.provider, fast.api_key_env) == ("groq", "GROQ_API_KEY")
    assert tiers.describe("smart") == "anthropic/claude-x"
    (tmp_path / "pyproject.toml").write_text(
        '[tool.handoff.tiers.x]\nmodel = "m"\nprovider = "not a provider"\n')
    with pytest.raises(ValueError, match="neither a LiveKit plugin name"):
        Tiers.load(tmp_path, environ={})
    (tmp_path / "pyproject.toml").write_text('[tool.handoff.tiers.x]\nmodel = "m"\noptions = 3\n')
    with pytest.raises(ValueError, match="'options' must be a table"):
        Tiers.load(tmp_path, environ={})


def test_an_option_the_plugin_does_not_take_is_refused_before_it_is_made(offline: list[Any]) -> None:
    tiers = Tiers({"t": TierConfig("t", "claude-x", provider="anthropic",
                                   options={"parallel_tool_call": False})}, secrets=_keys)
    with pytest.raises(PluginError, match=r"no option 'parallel_tool_call'.*parallel_tool_calls"):
        tiers.llm("t")
    with pytest.raises(PluginError, match="takes no 'voice'"):
        make("tts", "deepgram", voice="x", api_key="k")


def test_a_provider_that_is_not_installed_says_what_to_install() -> None:
    tiers = Tiers({"t": TierConfig("t", "m", provider="nosuchvendor")}, secrets=_keys)
    assert tiers.configs["t"].api_key_env == "NOSUCHVENDOR_API_KEY"
    assert tiers.problems(["t"]) == [
        "tier 't' uses provider 'nosuchvendor', which is not installed "
        "(pip install livekit-plugins-nosuchvendor)"]
    with pytest.raises(PluginError, match="pip install livekit-plugins-nosuchvendor"):
        tiers.llm("t")
    assert Tiers({"t": TierConfig("t", "m", provider="anthropic")}).problems(["t"]) == []


@pytest.mark.parametrize(
    ("config", "stt_module", "tts_module", "check"),
    [
        (VoiceConfig(), "livekit.plugins.openai", "livekit.plugins.openai",
         lambda stt, tts: tts._opts.voice == "ash"),  # the plugin's defaults
        (VoiceConfig(stt_provider="deepgram", stt_model="nova-3", language="de",
                     tts_provider="deepgram", tts_model="aura-2-thalia-en"),
         "livekit.plugins.deepgram", "livekit.plugins.deepgram",
         lambda stt, tts: stt._opts.language == "de" and tts._opts.model == "aura-2-thalia-en"),
        (VoiceConfig(tts_provider="cartesia", tts_voice="voice-1", tts_options={"speed": 1.1}),
         "livekit.plugins.openai", "livekit.plugins.cartesia",
         lambda stt, tts: tts._opts.voice == "voice-1" and tts._opts.speed == 1.1),
        (VoiceConfig(tts_provider="elevenlabs", tts_voice="voice-id-2"),
         "livekit.plugins.openai", "livekit.plugins.elevenlabs",
         lambda stt, tts: tts._opts.voice_id == "voice-id-2"),
        (VoiceConfig(tts_provider="google", tts_voice="en-US-Chirp3-HD-Aoede"),
         "livekit.plugins.openai", "livekit.plugins.google",
         lambda stt, tts: tts._opts.voice.name == "en-US-Chirp3-HD-Aoede"),
        (VoiceConfig(stt_provider="groq", stt_model="whisper-large-v3-turbo",
                     tts_provider="groq"),
         "livekit.plugins.groq", "livekit.plugins.groq", lambda stt, tts: True),
    ],
)
async def test_voices_build_any_stt_and_tts_plugin_offline(
    offline: list[Any], config: VoiceConfig, stt_module: str, tts_module: str, check: Any
) -> None:
    voices = Voices(config, secrets=_keys)
    stt, tts = voices.stt(), voices.tts()
    assert type(stt).__module__.startswith(stt_module)
    assert type(tts).__module__.startswith(tts_module)
    assert check(stt, tts)
    assert voices.tts() is tts  # made once per process
    assert offline == []


class Call(Context):
    pass


class Front(State[Call]):
    """Front desk."""

    instructions = "x"


class Cartesian(State[Call]):
    """Speaks with another provider's voice."""

    instructions = "x"
    tts_provider: ClassVar[str] = "cartesia"
    tts_voice: ClassVar[str] = "voice-9"


async def test_a_state_naming_another_tts_provider_starts_from_its_defaults(
    offline: list[Any],
) -> None:
    """The flow's OpenAI voice 'coral' is not passed to Cartesia; the state's agent gets
    its own TTS object, the other state the session's."""
    voices = Voices(VoiceConfig(tts_voice="coral", tts_instructions="calm"), secrets=_keys)
    assert voices.agent_options(Front) == {}
    tts = voices.agent_options(Cartesian)["tts"]
    assert type(tts).__module__.startswith("livekit.plugins.cartesia")
    assert tts._opts.voice == "voice-9"
    flow = Flow("voices", context=Call, initial=Front, states=[Front, Cartesian], final=[Cartesian])
    assert {"OPENAI_API_KEY", "CARTESIA_API_KEY"} <= set(
        required_secrets(flow, VoiceConfig(tts_provider="cartesia")))
    flow.agent_options = voices.agent_options
    run = flow.new_run(llm=ScriptedLLM(["x"]))
    assert run.make_agent("Cartesian").tts is tts
    run.close()
    assert offline == []
