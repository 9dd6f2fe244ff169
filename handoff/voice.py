"""Voice settings: speech-to-text, text-to-speech and turn taking, per flow and per state.

The flow's defaults come from ``[tool.handoff.voice]`` of pyproject.toml (or
``[voice]`` of handoff.toml), overridable by environment variables
(``HANDOFF_STT_MODEL``, ``HANDOFF_TTS_MODEL``, ``HANDOFF_TTS_VOICE``,
``HANDOFF_VOICE_BASE_URL``, ``HANDOFF_LANGUAGE``)::

    [tool.handoff.voice]
    stt_model = "gpt-4o-mini-transcribe"
    tts_model = "gpt-4o-mini-tts"
    tts_voice = "ash"
    language = "en"

Any LiveKit STT/TTS plugin works: ``stt_provider``/``tts_provider`` name it (``openai``, the
default, ``deepgram``, ``cartesia``, ``elevenlabs``, ``google``, ``groq``… or a
``package.module:factory``), and ``stt_options``/``tts_options`` are the plugin's own
constructor arguments (see :mod:`handoff.plugins`)::

    [tool.handoff.voice]
    tts_provider = "cartesia"
    tts_voice = "794f9389-aac1-45b6-b726-9d9369183238"
    [tool.handoff.voice.tts_options]
    speed = "fast"

A field left unset is the plugin's default. The key is read from ``api_key_env`` if set,
else from the variable each plugin reads (``OPENAI_API_KEY``, ``DEEPGRAM_API_KEY``…).

A State overrides any of them with a class attribute of the same name (a state that
names another provider starts from that provider's defaults), plus the
turn-taking settings ``turn_mode`` (vad, stt, realtime_llm, manual), ``interruptible``,
``endpointing_min_delay`` and ``endpointing_max_delay`` (named apart from the ``Agent``
properties ``turn_detection``/``allow_interruptions``/``min_endpointing_delay``, which a
class attribute would shadow)::

    class Billing(State[Call]):
        tts_voice = "sage"              # billing speaks with another voice
        interruptible = False           # and reads amounts out without being cut off

:meth:`Voices.agent_options` turns a State class into the keyword arguments of
``livekit.agents.Agent`` that differ from the flow's session defaults (STT/TTS
objects are made once per process and shared). Keys come from the secrets chain.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from . import plugins
from .errors import ConfigError
from .settings import HandoffSettings

SecretLookup = Callable[[str], str | None]

STATE_VOICE_ATTRS = ("stt_provider", "stt_model", "stt_options", "tts_provider", "tts_model",
                     "tts_voice", "tts_instructions", "tts_options", "language")
STATE_TURN_ATTRS = ("turn_mode", "interruptible", "endpointing_min_delay",
                    "endpointing_max_delay")
TURN_MODES = ("vad", "stt", "realtime_llm", "manual")
_ENV = {
    "stt_model": "HANDOFF_STT_MODEL",
    "tts_model": "HANDOFF_TTS_MODEL",
    "tts_voice": "HANDOFF_TTS_VOICE",
    "base_url": "HANDOFF_VOICE_BASE_URL",
    "language": "HANDOFF_LANGUAGE",
}


class VoiceConfig(BaseModel):
    """One complete voice setting (the flow's, or a state's after its overrides)."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid",  # VoiceSettings shares it
                                      use_attribute_docstrings=True)

    stt_provider: str = "openai"
    """The speech-to-text plugin (``deepgram``…) or ``package.module:factory``."""
    stt_model: str | None = None
    """``HANDOFF_STT_MODEL``: the STT model (unset: the plugin's default)."""
    stt_options: dict[str, Any] = Field(default_factory=dict)
    """The STT plugin's own constructor arguments (a table)."""
    tts_provider: str = "openai"
    """The text-to-speech plugin (``cartesia``…) or ``package.module:factory``."""
    tts_model: str | None = None
    """``HANDOFF_TTS_MODEL``: the TTS model (unset: the plugin's default)."""
    tts_voice: str | None = None
    """``HANDOFF_TTS_VOICE``: the voice the TTS speaks with."""
    tts_instructions: str | None = None
    """How the TTS should speak (for models that take instructions)."""
    tts_options: dict[str, Any] = Field(default_factory=dict)
    """The TTS plugin's own constructor arguments (a table)."""
    language: str | None = None
    """``HANDOFF_LANGUAGE``: the language spoken and heard (``en``, ``de``…)."""
    base_url: str | None = None
    """An OpenAI-compatible server for both (a local speech server); no key is then needed."""
    api_key_env: str = ""
    """Where the key of both comes from; empty: the variable each provider reads."""
    turn_mode: str | None = None
    """LiveKit's turn detection: vad, stt, realtime_llm or manual (None: LiveKit chooses)."""
    interruptible: bool | None = None
    """Whether the caller may cut the agent off (None: LiveKit's default)."""
    endpointing_min_delay: float | None = Field(None, ge=0)
    """Seconds of silence before a turn may end (None: LiveKit's default)."""
    endpointing_max_delay: float | None = Field(None, ge=0)
    """Seconds of silence after which a turn ends (None: LiveKit's default)."""

    def model_post_init(self, context: Any) -> None:
        plugins.check_provider(self.stt_provider, "voice stt_provider")
        plugins.check_provider(self.tts_provider, "voice tts_provider")

    def key_env(self, kind: plugins.Kind) -> str:
        """The variable the key of the ``stt`` or ``tts`` provider is read from ('' = none)."""
        if self.base_url:
            return ""
        provider = self.stt_provider if kind == "stt" else self.tts_provider
        return self.api_key_env or plugins.default_key_env(provider)

    def for_state(self, state_cls: type) -> VoiceConfig:
        """This config with the state's class-attribute overrides applied.

        A state naming another STT or TTS provider starts from that provider's defaults
        (the flow's model, voice and options belong to the flow's provider).
        """
        changes: dict[str, Any] = {}
        for name in (*STATE_VOICE_ATTRS, *STATE_TURN_ATTRS):
            value = getattr(state_cls, name, None)
            if value is not None and not isinstance(value, property):
                changes[name] = value
        for kind, own in (("stt", ("model", "options")),
                          ("tts", ("model", "voice", "instructions", "options"))):
            provider = changes.get(f"{kind}_provider")
            if provider is not None and provider != getattr(self, f"{kind}_provider"):
                for name in own:
                    changes.setdefault(f"{kind}_{name}", {} if name == "options" else None)
        return self.model_copy(update=changes) if changes else self

    def turn_handling(self) -> dict[str, Any]:
        """LiveKit ``TurnHandlingOptions`` for the set turn-taking fields (empty if none)."""
        options: dict[str, Any] = {}
        if self.turn_mode is not None:
            if self.turn_mode not in TURN_MODES:
                raise ConfigError(f"turn_mode {self.turn_mode!r}: use one of {', '.join(TURN_MODES)}")
            options["turn_detection"] = self.turn_mode
        if self.interruptible is not None:
            options["interruption"] = {"enabled": self.interruptible}
        endpointing = {}
        if self.endpointing_min_delay is not None:
            endpointing["min_delay"] = self.endpointing_min_delay
        if self.endpointing_max_delay is not None:
            endpointing["max_delay"] = self.endpointing_max_delay
        if endpointing:
            options["endpointing"] = endpointing
        return options


class VoiceSettings(HandoffSettings, VoiceConfig):
    """The flow's voice as configured (``VoiceSettings.load()``): ``[tool.handoff.voice]``
    (``[voice]`` of handoff.toml), then ``HANDOFF_STT_MODEL``, ``HANDOFF_TTS_MODEL``,
    ``HANDOFF_TTS_VOICE``, ``HANDOFF_VOICE_BASE_URL`` and ``HANDOFF_LANGUAGE`` (set and not
    blank); a bad value is a one-line ConfigError."""

    section: ClassVar[str] = "voice"
    blank_env_is_unset: ClassVar[bool] = True

    @classmethod
    def env_names(cls, name: str) -> list[str]:
        return [_ENV[name]] if name in _ENV else []


class Voices:
    """The process's STT/TTS objects: the flow's defaults and each state's overrides."""

    def __init__(self, config: VoiceConfig, *, secrets: SecretLookup | None = None) -> None:
        self.config = config
        self._secrets: SecretLookup = secrets or os.environ.get
        self._stt: dict[tuple[Any, ...], Any] = {}
        self._tts: dict[tuple[Any, ...], Any] = {}

    def stt(self, config: VoiceConfig | None = None) -> Any:
        """The LiveKit STT for ``config`` (default: the flow's), made once per process."""
        cfg = config or self.config
        key = (cfg.stt_provider, cfg.stt_model, cfg.language, _frozen(cfg.stt_options),
               cfg.base_url, cfg.key_env("stt"))
        if key not in self._stt:
            self._stt[key] = plugins.make(
                "stt", cfg.stt_provider, api_key=self._key(cfg, "stt"), base_url=cfg.base_url,
                options=cfg.stt_options, model=cfg.stt_model, language=cfg.language)
        return self._stt[key]

    def tts(self, config: VoiceConfig | None = None) -> Any:
        """The LiveKit TTS for ``config`` (default: the flow's), made once per process."""
        cfg = config or self.config
        key = (cfg.tts_provider, cfg.tts_model, cfg.tts_voice, cfg.tts_instructions,
               _frozen(cfg.tts_options), cfg.base_url, cfg.key_env("tts"))
        if key not in self._tts:
            self._tts[key] = plugins.make(
                "tts", cfg.tts_provider, api_key=self._key(cfg, "tts"), base_url=cfg.base_url,
                options=cfg.tts_options, model=cfg.tts_model, voice=cfg.tts_voice,
                instructions=cfg.tts_instructions)
        return self._tts[key]

    def session_options(self) -> dict[str, Any]:
        """``AgentSession`` keyword arguments: the flow's STT, TTS and turn handling."""
        options: dict[str, Any] = {"stt": self.stt(), "tts": self.tts()}
        if turn := self.config.turn_handling():
            options["turn_handling"] = turn
        return options

    def agent_options(self, state_cls: type) -> dict[str, Any]:
        """``Agent`` keyword arguments where the state differs from the flow (else empty).

        This is the hook a State's constructor passes to ``Agent.__init__``; keys absent
        here fall back to the session's settings in LiveKit.
        """
        cfg = self.config.for_state(state_cls)
        flow = self.config
        options: dict[str, Any] = {}
        if _stt_fields(cfg) != _stt_fields(flow):
            options["stt"] = self.stt(cfg)
        if _tts_fields(cfg) != _tts_fields(flow):
            options["tts"] = self.tts(cfg)
        if cfg.turn_handling() != self.config.turn_handling():
            options["turn_handling"] = cfg.turn_handling()
        return options

    def _key(self, cfg: VoiceConfig, kind: plugins.Kind) -> str | None:
        name = cfg.key_env(kind)
        return self._secrets(name) if name else None


def _frozen(options: Mapping[str, Any]) -> str:
    return repr(sorted(options.items()))


def _stt_fields(cfg: VoiceConfig) -> tuple[Any, ...]:
    return cfg.stt_provider, cfg.stt_model, cfg.language, _frozen(cfg.stt_options)


def _tts_fields(cfg: VoiceConfig) -> tuple[Any, ...]:
    return (cfg.tts_provider, cfg.tts_model, cfg.tts_voice, cfg.tts_instructions,
            _frozen(cfg.tts_options))
