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

A State overrides any of them with a class attribute of the same name, plus the
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
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from .config import find_table

SecretLookup = Callable[[str], str | None]

STATE_VOICE_ATTRS = ("stt_model", "tts_model", "tts_voice", "tts_instructions", "language")
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


@dataclass(frozen=True)
class VoiceConfig:
    """One complete voice setting (the flow's, or a state's after its overrides)."""

    stt_model: str = "gpt-4o-mini-transcribe"
    tts_model: str = "gpt-4o-mini-tts"
    tts_voice: str = "ash"
    tts_instructions: str | None = None
    language: str = "en"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    turn_mode: str | None = None
    """LiveKit's turn detection: vad, stt, realtime_llm or manual (None: LiveKit chooses)."""
    interruptible: bool | None = None
    endpointing_min_delay: float | None = None
    endpointing_max_delay: float | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "voice") -> VoiceConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{source}: unknown voice keys {sorted(unknown)}; use {sorted(known)}")
        return cls(**dict(data))

    @classmethod
    def load(cls, start: Path | None = None,
             environ: Mapping[str, str] | None = None) -> VoiceConfig:
        """From handoff.toml / pyproject.toml found upwards of ``start``, then the environment."""
        environ = os.environ if environ is None else environ
        raw, source = find_table("voice", start or Path.cwd())
        config = cls.from_mapping(raw or {}, source or "defaults")
        changes: dict[str, Any] = {k: environ[v] for k, v in _ENV.items() if environ.get(v)}
        return replace(config, **changes) if changes else config

    def for_state(self, state_cls: type) -> VoiceConfig:
        """This config with the state's class-attribute overrides applied."""
        changes = {}
        for name in (*STATE_VOICE_ATTRS, *STATE_TURN_ATTRS):
            value = getattr(state_cls, name, None)
            if value is not None and not isinstance(value, property):
                changes[name] = value
        return replace(self, **changes) if changes else self

    def turn_handling(self) -> dict[str, Any]:
        """LiveKit ``TurnHandlingOptions`` for the set turn-taking fields (empty if none)."""
        options: dict[str, Any] = {}
        if self.turn_mode is not None:
            if self.turn_mode not in TURN_MODES:
                raise ValueError(f"turn_mode {self.turn_mode!r}: use one of {', '.join(TURN_MODES)}")
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


class Voices:
    """The process's STT/TTS objects: the flow's defaults and each state's overrides."""

    def __init__(self, config: VoiceConfig, *, secrets: SecretLookup | None = None) -> None:
        self.config = config
        self._secrets: SecretLookup = secrets or os.environ.get
        self._stt: dict[tuple[Any, ...], Any] = {}
        self._tts: dict[tuple[Any, ...], Any] = {}

    def stt(self, config: VoiceConfig | None = None) -> Any:
        """A livekit-plugins-openai STT for ``config`` (default: the flow's), shared."""
        cfg = config or self.config
        key = (cfg.stt_model, cfg.language, cfg.base_url, cfg.api_key_env)
        if key not in self._stt:
            from livekit.plugins import openai

            self._stt[key] = openai.STT(model=cfg.stt_model, language=cfg.language,
                                        **self._client_kwargs(cfg))
        return self._stt[key]

    def tts(self, config: VoiceConfig | None = None) -> Any:
        """A livekit-plugins-openai TTS for ``config`` (default: the flow's), shared."""
        cfg = config or self.config
        key = (cfg.tts_model, cfg.tts_voice, cfg.tts_instructions, cfg.base_url, cfg.api_key_env)
        if key not in self._tts:
            from livekit.plugins import openai

            extra: dict[str, Any] = {}
            if cfg.tts_instructions:
                extra["instructions"] = cfg.tts_instructions
            self._tts[key] = openai.TTS(model=cfg.tts_model, voice=cfg.tts_voice,
                                        **extra, **self._client_kwargs(cfg))
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
        options: dict[str, Any] = {}
        if (cfg.stt_model, cfg.language) != (self.config.stt_model, self.config.language):
            options["stt"] = self.stt(cfg)
        if ((cfg.tts_model, cfg.tts_voice, cfg.tts_instructions)
                != (self.config.tts_model, self.config.tts_voice, self.config.tts_instructions)):
            options["tts"] = self.tts(cfg)
        if cfg.turn_handling() != self.config.turn_handling():
            options["turn_handling"] = cfg.turn_handling()
        return options

    def _client_kwargs(self, cfg: VoiceConfig) -> dict[str, Any]:
        key = self._secrets(cfg.api_key_env)
        kwargs: dict[str, Any] = {}
        if cfg.base_url:
            kwargs["base_url"] = cfg.base_url
            kwargs["api_key"] = key or "not-needed"
        elif key:
            kwargs["api_key"] = key
        return kwargs
