"""Tiers: named LLM choices (``fast``, ``smart``…) configured, not coded.

Declared in ``[tool.handoff.tiers.<name>]`` of the project's pyproject.toml, or in
``[tiers.<name>]`` of a ``handoff.toml`` (which wins when both exist)::

    [tool.handoff.tiers.fast]
    model = "gpt-4o-mini"

    [tool.handoff.tiers.smart]
    provider = "anthropic"                   # any LiveKit LLM plugin, or "package.module:factory"
    model = "claude-3-5-haiku-latest"
    temperature = 0.2
    fallbacks = ["fast"]                     # tried in order through livekit's FallbackAdapter
    [tool.handoff.tiers.smart.options]       # the plugin's own constructor arguments
    max_tokens = 512
    parallel_tool_calls = false

    [tool.handoff.tiers.voice]
    kind = "realtime"                        # a speech-to-speech model (handoff.realtime)
    model = "gpt-realtime"

    [tool.handoff.tiers.local]
    model = "llama3.1"
    base_url = "http://localhost:11434/v1"   # any OpenAI-compatible endpoint (provider openai)
    api_key_env = "OLLAMA_KEY"               # where the key comes from (default: the provider's)

``provider`` defaults to ``openai``; ``anthropic``, ``google``, ``groq`` and every other
installed ``livekit-plugins-X`` work the same way (``pip install 'livekit-handoff[anthropic]'``…),
see :mod:`handoff.plugins`. The key is looked up under ``api_key_env`` (by default the
variable the plugin itself reads: ``ANTHROPIC_API_KEY``, ``GOOGLE_API_KEY``…).

Environment variables override a tier per field: ``HANDOFF_TIER_SMART_MODEL``,
``HANDOFF_TIER_SMART_PROVIDER``, ``HANDOFF_TIER_SMART_API_KEY_ENV``,
``HANDOFF_TIER_SMART_BASE_URL``, ``HANDOFF_TIER_SMART_FALLBACKS`` (comma-separated).
LLM objects are created once per process and per tier, and shared by sessions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from livekit.agents import llm
from livekit.agents.llm import LLM

from . import plugins
from .config import find_table
from .errors import ConfigError, PluginError, UnknownTierError
from .realtime import Model, TierKind, combine, tier_kind

DEFAULT_TIERS: dict[str, dict[str, Any]] = {
    "fast": {"model": "gpt-4o-mini"},
    "smart": {"model": "gpt-4o", "fallbacks": ["fast"]},
}

SecretLookup = Callable[[str], str | None]


_KEYS = ("model", "provider", "base_url", "api_key_env", "temperature", "fallbacks", "options",
         "kind")


@dataclass(frozen=True)
class TierConfig:
    """One tier: which plugin, which model, with which options and fallbacks.

    ``api_key_env`` left empty means the provider's own variable (``OPENAI_API_KEY``,
    ``ANTHROPIC_API_KEY``…); ``options`` are keyword arguments of the plugin's ``LLM``
    constructor (``parallel_tool_calls``, ``max_tokens``, ``top_p``…).
    """

    name: str
    model: str
    provider: str = "openai"
    base_url: str | None = None
    api_key_env: str = ""
    temperature: float | None = None
    fallbacks: tuple[str, ...] = field(default_factory=tuple)
    options: Mapping[str, Any] = field(default_factory=dict)
    kind: TierKind = "llm"
    """``realtime`` for a speech-to-speech model (see :mod:`handoff.realtime`)."""

    def __post_init__(self) -> None:
        plugins.check_provider(self.provider, f"tier {self.name!r}")
        if not self.api_key_env:
            object.__setattr__(self, "api_key_env", plugins.default_key_env(self.provider))

    @classmethod
    def from_mapping(cls, name: str, data: Mapping[str, Any]) -> TierConfig:
        unknown = set(data) - set(_KEYS)
        if unknown:
            raise ConfigError(f"tier {name!r}: unknown keys {sorted(unknown)}; use {list(_KEYS)}")
        if "model" not in data:
            raise ConfigError(f"tier {name!r} needs a 'model'")
        options = data.get("options", {})
        if not isinstance(options, Mapping):
            raise ConfigError(f"tier {name!r}: 'options' must be a table of constructor arguments")
        return cls(
            name=name,
            model=str(data["model"]),
            provider=str(data.get("provider", "openai")),
            base_url=data.get("base_url"),
            api_key_env=data.get("api_key_env", ""),
            temperature=data.get("temperature"),
            fallbacks=tuple(data.get("fallbacks", ())),
            options=dict(options),
            kind=tier_kind(name, data.get("kind", "llm")),
        )

    @property
    def needs_key(self) -> bool:
        """True when the tier cannot run without a secret (no local ``base_url``)."""
        return not self.base_url and bool(self.api_key_env)

    def with_env(self, environ: Mapping[str, str]) -> TierConfig:
        prefix = f"HANDOFF_TIER_{self.name.upper()}_"
        changes: dict[str, Any] = {}
        if model := environ.get(prefix + "MODEL"):
            changes["model"] = model
        if provider := environ.get(prefix + "PROVIDER"):
            changes["provider"] = provider
            if not environ.get(prefix + "API_KEY_ENV") and self.api_key_env == plugins.default_key_env(
                    self.provider):
                changes["api_key_env"] = ""  # the new provider's own variable
        if api_key_env := environ.get(prefix + "API_KEY_ENV"):
            changes["api_key_env"] = api_key_env
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
        self._llms: dict[str, Model] = {}
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
        """``model``, ``provider/model`` or ``model via base_url`` — for logs and the demo."""
        cfg = self._config(name)
        model = cfg.model if cfg.provider == "openai" else f"{cfg.provider}/{cfg.model}"
        return model + (f" via {cfg.base_url}" if cfg.base_url else "")

    def is_configured(self, name: str) -> bool:
        """True when the tier can reach a model: a key is available or none is needed."""
        cfg = self._config(name)
        return not cfg.needs_key or bool(self._secrets(cfg.api_key_env))

    def problems(self, names: Iterable[str]) -> list[str]:
        """Why the tiers ``names`` (and their fallbacks) cannot be built here, checked
        without importing anything: a provider whose plugin is not installed."""
        found = []
        for name in sorted(set(names)):
            for cfg in (self._config(name), *(self._config(fb) for fb in self._config(name).fallbacks)):
                if not plugins.is_installed(cfg.provider):
                    found.append(f"tier {cfg.name!r} uses provider {cfg.provider!r}, which is not "
                                 f"installed (pip install {plugins.package_of(cfg.provider)})")
        return sorted(set(found))

    def models(self) -> Mapping[str, Model]:
        """The tiers as a read-only mapping name → shared LLM (or RealtimeModel), each made
        when first read (``flow.start(llm=tiers.models())``): a tier that cannot be made
        (its key is missing) fails when a state needs it, not when the mapping is made."""
        return _Models(self)

    def llm(self, name: str) -> Model:
        """The shared livekit LLM (or RealtimeModel) of a tier, with its fallbacks, made on
        first use."""
        if name not in self._llms:
            cfg = self._config(name)
            chain = [self._make(cfg), *(self._make(self._config(fb)) for fb in cfg.fallbacks)]
            self._llms[name] = combine(name, chain)
        return self._llms[name]

    def kind_of(self, name: str) -> TierKind:
        """``llm`` or ``realtime``: declared, or (a factory's tier) what it made."""
        made = self._llms.get(name)
        if made is not None and isinstance(made, llm.RealtimeModel):
            return "realtime"
        return self._config(name).kind

    def _config(self, name: str) -> TierConfig:
        try:
            return self.configs[name]
        except KeyError:
            raise UnknownTierError(
                f"unknown tier {name!r}; declared tiers: {', '.join(self.names())} "
                f"({self.source})"
            ) from None

    def _make(self, cfg: TierConfig) -> Model:
        key = self._secrets(cfg.api_key_env) if cfg.api_key_env else None
        made = plugins.make(cfg.kind, cfg.provider, api_key=key, base_url=cfg.base_url,
                            options=cfg.options, model=cfg.model, temperature=cfg.temperature)
        if not isinstance(made, LLM | llm.RealtimeModel):
            raise PluginError(f"tier {cfg.name!r}: provider {cfg.provider!r} made a "
                              f"{type(made).__name__}, not a livekit LLM or RealtimeModel")
        return made


class _Models(Mapping[str, Model]):
    """:meth:`Tiers.models`: every declared tier, its LLM made on first read."""

    def __init__(self, tiers: Tiers) -> None:
        self._tiers = tiers

    def __getitem__(self, name: str) -> Model:
        if name not in self._tiers:
            raise KeyError(name)
        return self._tiers.llm(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._tiers.names())

    def __len__(self) -> int:
        return len(self._tiers.configs)
