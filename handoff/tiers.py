"""Tiers: named LLM choices (``fast``, ``smart``…) configured, not coded.

Declared in ``[tool.handoff.tiers.<name>]`` of the project's pyproject.toml, or in
``[tiers.<name>]`` of a ``handoff.toml`` (which wins when both exist)::

    [tool.handoff.tiers.fast]
    model = "gpt-4o-mini"

    [tool.handoff.tiers.smart]
    model = "gpt-4o"
    base_url = "http://localhost:11434/v1"   # any OpenAI-compatible endpoint
    api_key_env = "OLLAMA_KEY"               # where the key comes from (default OPENAI_API_KEY)
    fallbacks = ["fast"]                     # tried in order through livekit's FallbackAdapter

Environment variables override a tier per field: ``HANDOFF_TIER_SMART_MODEL``,
``HANDOFF_TIER_SMART_BASE_URL``, ``HANDOFF_TIER_SMART_FALLBACKS`` (comma-separated).
LLM objects are created once per process and per tier, and shared by sessions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from livekit.agents import llm
from livekit.agents.llm import LLM

from .config import find_table
from .errors import UnknownTierError

DEFAULT_TIERS: dict[str, dict[str, Any]] = {
    "fast": {"model": "gpt-4o-mini"},
    "smart": {"model": "gpt-4o", "fallbacks": ["fast"]},
}

SecretLookup = Callable[[str], str | None]


@dataclass(frozen=True)
class TierConfig:
    name: str
    model: str
    provider: str = "openai"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float | None = None
    fallbacks: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_mapping(cls, name: str, data: Mapping[str, Any]) -> TierConfig:
        unknown = set(data) - {
            "model", "provider", "base_url", "api_key_env", "temperature", "fallbacks"
        }
        if unknown:
            raise ValueError(f"tier {name!r}: unknown keys {sorted(unknown)}")
        if "model" not in data:
            raise ValueError(f"tier {name!r} needs a 'model'")
        provider = data.get("provider", "openai")
        if provider != "openai":
            raise ValueError(
                f"tier {name!r}: provider {provider!r} is not supported; use 'openai' "
                "(any OpenAI-compatible endpoint through base_url)"
            )
        return cls(
            name=name,
            model=str(data["model"]),
            provider=provider,
            base_url=data.get("base_url"),
            api_key_env=data.get("api_key_env", "OPENAI_API_KEY"),
            temperature=data.get("temperature"),
            fallbacks=tuple(data.get("fallbacks", ())),
        )

    def with_env(self, environ: Mapping[str, str]) -> TierConfig:
        prefix = f"HANDOFF_TIER_{self.name.upper()}_"
        changes: dict[str, Any] = {}
        if model := environ.get(prefix + "MODEL"):
            changes["model"] = model
        if base_url := environ.get(prefix + "BASE_URL"):
            changes["base_url"] = base_url
        if (fallbacks := environ.get(prefix + "FALLBACKS")) is not None:
            changes["fallbacks"] = tuple(f.strip() for f in fallbacks.split(",") if f.strip())
        return replace(self, **changes) if changes else self


class Tiers:
    """The tier table of a process: names → configs → shared livekit LLMs."""

    def __init__(
        self,
        configs: Mapping[str, TierConfig],
        *,
        source: str = "defaults",
        secrets: SecretLookup | None = None,
    ) -> None:
        self.configs = dict(configs)
        self.source = source
        self._secrets: SecretLookup = secrets or os.environ.get
        self._llms: dict[str, LLM] = {}
        for cfg in self.configs.values():
            for fb in cfg.fallbacks:
                if fb not in self.configs:
                    raise UnknownTierError(
                        f"tier {cfg.name!r} falls back to unknown tier {fb!r} ({source})"
                    )

    @classmethod
    def load(
        cls,
        start: Path | None = None,
        environ: Mapping[str, str] | None = None,
        secrets: SecretLookup | None = None,
    ) -> Tiers:
        """Find handoff.toml or pyproject.toml from ``start`` (default: cwd) upwards.

        ``secrets`` looks API keys up by name (e.g. ``handoff.secrets.SecretChain``);
        the default reads the environment.
        """
        environ = os.environ if environ is None else environ
        raw, source = find_table("tiers", start or Path.cwd())
        if raw is None:
            raw, source = DEFAULT_TIERS, "built-in defaults"
        configs = {
            name: TierConfig.from_mapping(name, data).with_env(environ)
            for name, data in raw.items()
        }
        return cls(configs, source=source, secrets=secrets)

    def __contains__(self, name: object) -> bool:
        return name in self.configs

    def names(self) -> list[str]:
        return sorted(self.configs)

    def describe(self, name: str) -> str:
        """``model`` or ``model via base_url`` — for logs and the demo."""
        cfg = self._config(name)
        return cfg.model + (f" via {cfg.base_url}" if cfg.base_url else "")

    def is_configured(self, name: str) -> bool:
        """True when the tier can reach a model: a key is available or base_url is set."""
        cfg = self._config(name)
        return bool(cfg.base_url) or bool(self._secrets(cfg.api_key_env))

    def llm(self, name: str) -> LLM:
        """The shared livekit LLM of a tier (with its fallbacks), made on first use."""
        if name not in self._llms:
            cfg = self._config(name)
            chain = [self._make(cfg), *(self._make(self._config(fb)) for fb in cfg.fallbacks)]
            self._llms[name] = chain[0] if len(chain) == 1 else llm.FallbackAdapter(chain)
        return self._llms[name]

    def _config(self, name: str) -> TierConfig:
        try:
            return self.configs[name]
        except KeyError:
            raise UnknownTierError(
                f"unknown tier {name!r}; declared tiers: {', '.join(self.names())} "
                f"({self.source})"
            ) from None

    def _make(self, cfg: TierConfig) -> LLM:
        from livekit.plugins import openai

        key = self._secrets(cfg.api_key_env)
        kwargs: dict[str, Any] = {"model": cfg.model}
        if cfg.base_url:
            kwargs["base_url"] = cfg.base_url
            kwargs["api_key"] = key or "not-needed"  # local servers ignore the key
        elif key:
            kwargs["api_key"] = key
        if cfg.temperature is not None:
            kwargs["temperature"] = cfg.temperature
        return openai.LLM(**kwargs)
