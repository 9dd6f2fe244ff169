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

Environment variables override a declared tier per field: ``HANDOFF_TIER_SMART_MODEL``,
``HANDOFF_TIER_SMART_PROVIDER``, ``HANDOFF_TIER_SMART_API_KEY_ENV``,
``HANDOFF_TIER_SMART_BASE_URL``, ``HANDOFF_TIER_SMART_TEMPERATURE``,
``HANDOFF_TIER_SMART_KIND``, ``HANDOFF_TIER_SMART_FALLBACKS`` (comma-separated).
:class:`TierSettings` reads them (pydantic-settings, as :mod:`handoff.settings`): a bad
value is a one-line :class:`~handoff.errors.ConfigError` naming the variable or the key.
LLM objects are created once per process and per tier, and shared by sessions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livekit.agents import llm
from livekit.agents.llm import LLM
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from . import plugins
from .config import find_table
from .errors import ConfigError, PluginError, UnknownTierError
from .realtime import KINDS, Model, TierKind, combine
from .settings import HandoffSettings, one_line, table_key

DEFAULT_TIERS: dict[str, dict[str, Any]] = {
    "fast": {"model": "gpt-4o-mini"},
    "smart": {"model": "gpt-4o", "fallbacks": ["fast"]},
}

SecretLookup = Callable[[str], str | None]


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
        """The tier ``name`` from a table's keys (:class:`TierSpec`); a bad one is a
        :class:`ConfigError` naming the tier."""
        try:
            return TierSpec.model_validate(data).config(name)
        except ValidationError as exc:
            loc = ".".join(map(str, exc.errors()[0]["loc"]))
            raise one_line(f"tier {name!r}: {loc}", exc) from None

    @property
    def needs_key(self) -> bool:
        """True when the tier cannot run without a secret (no local ``base_url``)."""
        return not self.base_url and bool(self.api_key_env)


class TierSpec(BaseModel):
    """One tier as written in the table (``[tool.handoff.tiers.<name>]``) or the environment."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    model: str
    """``HANDOFF_TIER_<NAME>_MODEL``: the provider's model name."""
    provider: str = "openai"
    """``HANDOFF_TIER_<NAME>_PROVIDER``: a LiveKit plugin name or ``package.module:factory``."""
    base_url: str | None = None
    """``HANDOFF_TIER_<NAME>_BASE_URL``: an OpenAI-compatible server (no key needed)."""
    api_key_env: str = ""
    """``HANDOFF_TIER_<NAME>_API_KEY_ENV``: the variable the key is read from ('': the
    provider's own)."""
    temperature: float | None = None
    """``HANDOFF_TIER_<NAME>_TEMPERATURE``: sampling temperature (unset: the provider's)."""
    fallbacks: tuple[str, ...] = ()
    """``HANDOFF_TIER_<NAME>_FALLBACKS``: tiers tried in order (comma-separated in the variable)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """The plugin's own constructor arguments (a table; not an environment variable)."""
    kind: TierKind = "llm"
    """``HANDOFF_TIER_<NAME>_KIND``: ``llm``, or ``realtime`` for a speech-to-speech model."""

    @field_validator("provider")
    @classmethod
    def _provider(cls, value: str) -> str:
        plugins.check_provider(value, "tier")
        return value

    @field_validator("options", mode="before")
    @classmethod
    def _options(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise ValueError("'options' must be a table of constructor arguments")
        return value

    @field_validator("fallbacks", mode="before")
    @classmethod
    def _fallbacks(cls, value: Any) -> Any:
        if isinstance(value, str):  # the environment's comma-separated list
            return tuple(f.strip() for f in value.split(",") if f.strip())
        return value

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, value: Any) -> Any:
        if value not in KINDS:
            raise ValueError(f"kind {value!r} is not one of {list(KINDS)}")
        return value

    def config(self, name: str) -> TierConfig:
        """The runtime config of the tier ``name``."""
        return TierConfig(name, **self.model_dump())


_ENV_KEYS = sorted((k for k in TierSpec.model_fields if k != "options"), key=len, reverse=True)
"""The fields a ``HANDOFF_TIER_<NAME>_<FIELD>`` variable sets."""


def tier_variable(name: str, key: str) -> str:
    """The environment variable of field ``key`` of tier ``name``."""
    return f"HANDOFF_TIER_{name.upper()}_{key.upper()}"


class _TierTable(PydanticBaseSettingsSource):
    """``[tool.handoff.tiers]`` (``[tiers]`` of handoff.toml), else the built-in tiers."""

    def __init__(self, settings_cls: type[BaseSettings], start: Path) -> None:
        super().__init__(settings_cls)
        table, self.source = find_table("tiers", start)
        self.table: dict[str, Any] = DEFAULT_TIERS if table is None else table
        for name, tier in self.table.items():
            if not isinstance(tier, Mapping):
                raise ConfigError(f"{table_key('tiers', name, self.source)}: a tier is a table "
                                  "(model = ..., provider = ...)")
            unknown = sorted(set(tier) - set(TierSpec.model_fields))
            if unknown:
                raise ConfigError(
                    f"{self.source}: unknown key(s) {', '.join(unknown)} in tier {name!r}; "
                    f"known: {', '.join(TierSpec.model_fields)}")

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.table if field_name == "tiers" else None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return {"tiers": self.table}


class _TierEnvironment(PydanticBaseSettingsSource):
    """``HANDOFF_TIER_<NAME>_<FIELD>`` of the declared tiers (a blank value is unset, but
    for ``FALLBACKS``, where it means none). A new provider without its own
    ``API_KEY_ENV`` reads its own default variable, not the old provider's."""

    def __init__(self, settings_cls: type[BaseSettings], table: Mapping[str, Any],
                 environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.found: dict[str, dict[str, Any]] = {}
        for name, tier in table.items():
            given = {key: environ[tier_variable(name, key)] for key in _ENV_KEYS
                     if environ.get(tier_variable(name, key)) or (
                         key == "fallbacks" and tier_variable(name, key) in environ)}
            provider = str(tier.get("provider", "openai"))
            if "provider" in given and "api_key_env" not in given and (
                    tier.get("api_key_env") == plugins.default_key_env(provider)):
                given["api_key_env"] = ""  # the new provider's own variable
            if given:
                self.found[name] = given

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.found if field_name == "tiers" else None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return {"tiers": self.found} if self.found else {}


class TierSettings(HandoffSettings):
    """The process's tiers (``TierSettings.load()``), highest first: the variables
    ``HANDOFF_TIER_<NAME>_<FIELD>`` of a declared tier, the project's table
    (``[tool.handoff.tiers.<name>]``, or ``[tiers.<name>]`` of handoff.toml), then the
    built-in ``fast`` and ``smart``. A bad value is a one-line :class:`ConfigError`
    naming the variable, or the file and key."""

    section = "tiers"

    tiers: dict[str, TierSpec]
    """The tiers by name."""

    @classmethod
    def sources(cls, environ: Mapping[str, str], start: Path
                ) -> tuple[PydanticBaseSettingsSource, ...]:
        table = _TierTable(cls, start)
        return (_TierEnvironment(cls, table.table, environ), table)

    @classmethod
    def _config_error(cls, exc: ValidationError, flags: Mapping[str, Any],
                      env: Mapping[str, str], start: Path) -> ConfigError:
        loc = [str(part) for part in exc.errors()[0]["loc"]]
        name, key = [*loc, "", ""][1:3]
        if key in _ENV_KEYS and tier_variable(name, key) in env:
            return one_line(tier_variable(name, key), exc)
        source = find_table(cls.section, start)[1] or "built-in defaults"
        return one_line(table_key(f"tiers.{name}", key, source), exc)

    def configs(self) -> dict[str, TierConfig]:
        """The runtime config of every tier."""
        return {name: spec.config(name) for name, spec in self.tiers.items()}


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
        start = start or Path.cwd()
        configs = TierSettings.load(environ, start=start).configs()
        source = find_table("tiers", start)[1] or "built-in defaults"
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
