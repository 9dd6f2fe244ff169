"""Settings in one place: one pydantic-settings model per concern.

    settings = WorkerSettings.load(flow="app.flow:flow", max_jobs=4)   # flags win

Each model reads, highest first: the command line's flags (keyword arguments; None
means "not given"), environment variables (``HANDOFF_…``; the names the docs give),
the project's table (``[tool.handoff.<section>]`` in pyproject.toml, or ``[<section>]``
in handoff.toml, found upwards from the working directory, as tiers and voices are),
then the defaults. A bad value, or an unknown key in a table, is a
:class:`~handoff.errors.ConfigError` of one line that names where the value came from
(the variable, the file and key, or the flag); the CLI prints it and exits 2.

- :class:`WorkerSettings` (``[tool.handoff.worker]``): how ``handoff run`` serves calls;
- :class:`StoreSettings` (``[tool.handoff.stores]``): where checkpoints and events go;
- :class:`InspectorSettings` (``[tool.handoff.inspector]``, ``HANDOFF_INSPECT_…``);
- on this base, next to what they configure: :class:`handoff.tiers.TierSettings`
  (``[tool.handoff.tiers.<name>]``, ``HANDOFF_TIER_<NAME>_<FIELD>``),
  :class:`handoff.voice.VoiceSettings`, :class:`handoff.secrets.SecretSettings`
  (``HANDOFF_SECRETS…``, ``VAULT_…``), :class:`handoff.telemetry.otel.OtelSettings`
  (``OTEL_…``) and :class:`handoff.tools.call_control.OperatorSettings`
  (``HANDOFF_OPERATORS``). ``docs/configuration.md`` lists them all
  (:mod:`handoff.settings_reference` writes it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .config import find_table
from .errors import ConfigError

_READING: ContextVar[tuple[Mapping[str, str], Path] | None] = ContextVar(
    "handoff_settings_reading", default=None)
"""The environment and the folder a ``load`` reads (tests pass their own)."""


def reading() -> tuple[Mapping[str, str], Path]:
    """The environment and the folder the current :meth:`HandoffSettings.load` reads
    (outside one: the process's environment and the working directory); for sources."""
    found = _READING.get()
    return (os.environ, Path.cwd()) if found is None else found


def table_key(section: str, key: str, source: str) -> str:
    """Where a key of a project table is, as an error names it: ``[tool.handoff.<section>]
    <key> in <file>`` (``[<section>]`` in a handoff.toml)."""
    table = f"[{section}]" if source.endswith("handoff.toml") else f"[tool.handoff.{section}]"
    return f"{table} {key} in {source}" if source else key


class _Environment(PydanticBaseSettingsSource):
    """Each field's variables (:meth:`HandoffSettings.env_names`, the first set wins), from
    the mapping ``load`` was given, else ``os.environ``."""

    settings_cls: type[HandoffSettings]

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        environ = reading()[0]
        for name in self.settings_cls.env_names(field_name):
            if name in environ and not (self.settings_cls.blank_env_is_unset and not environ[name]):
                return environ[name], field_name, False
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found = {}
        for name, field in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(field, name)
            if value is not None:
                found[name] = value
        return found


class _ProjectTable(PydanticBaseSettingsSource):
    """The ``section`` table of handoff.toml / pyproject.toml; an unknown key is an error."""

    def __init__(self, settings_cls: type[BaseSettings], section: str, start: Path) -> None:
        super().__init__(settings_cls)
        table, self.source = find_table(section, start)
        self.table = table or {}
        unknown = sorted(set(self.table) - set(settings_cls.model_fields))
        if unknown:
            raise ConfigError(
                f"{self.source}: unknown setting(s) {', '.join(unknown)} in the {section} table; "
                f"known: {', '.join(settings_cls.model_fields)}")

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.table.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.table)


class HandoffSettings(BaseSettings):
    """The base of every settings model: its sources, and errors of one line."""

    section: ClassVar[str] = ""
    """The project table (``[tool.handoff.<section>]``)."""
    flags: ClassVar[dict[str, str]] = {}
    """The command-line flag of a field, where it is not ``--field-name``."""
    blank_env_is_unset: ClassVar[bool] = False
    """A variable set to "" counts as unset (else "" is the value, e.g. a port's "off")."""

    model_config = SettingsConfigDict(env_prefix="HANDOFF_", extra="ignore", frozen=True,
                                      use_attribute_docstrings=True,
                                      populate_by_name=True)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ, start = reading()
        return (init_settings, *cls.sources(environ, start))

    @classmethod
    def sources(cls, environ: Mapping[str, str], start: Path
                ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The model's sources after the flags, highest first: its variables, then its
        project table found from ``start``."""
        return (_Environment(cls), _ProjectTable(cls, cls.section, start))

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, *, start: Path | None = None,
             **flags: Any) -> Self:
        """The settings from ``flags`` (None: not given), ``environ`` (default: the
        process's), the project table found from ``start`` (default: the working
        directory) and the defaults. Raises :class:`ConfigError` naming a bad value."""
        given = {k: v for k, v in flags.items() if v is not None}
        env = os.environ if environ is None else environ
        token = _READING.set((env, start or Path.cwd()))
        try:
            return cls(**given)
        except ValidationError as exc:
            raise cls._config_error(exc, given, env, start or Path.cwd()) from None
        finally:
            _READING.reset(token)

    @classmethod
    def env_names(cls, name: str) -> list[str]:
        """The environment variables of field ``name``."""
        alias = cls.model_fields[name].validation_alias
        if isinstance(alias, AliasChoices):
            return [str(c) for c in alias.choices if str(c).upper() == str(c)]
        prefix = cls.model_config.get("env_prefix") or ""
        return [f"{prefix}{name}".upper()]

    @classmethod
    def _config_error(cls, exc: ValidationError, flags: Mapping[str, Any],
                      env: Mapping[str, str], start: Path) -> ConfigError:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else ""
        if name not in cls.model_fields:  # an alias: the field it belongs to
            name = next((f for f in cls.model_fields if name.upper() in cls.env_names(f)), name)
        if name in flags:
            where = cls.flags.get(name, "--" + name.replace("_", "-"))
        elif found := [v for v in cls.env_names(name) if v in env]:
            where = found[0]
        else:
            where = table_key(cls.section, name, find_table(cls.section, start)[1])
        secret = cls.model_fields[name].annotation in (SecretStr, SecretStr | None)
        return one_line(where, exc, secret=secret)


def one_line(where: str, exc: ValidationError, *, secret: bool = False) -> ConfigError:
    """The first error of ``exc`` as one line: where the value came from, the value
    (unless ``secret``), what is wrong, and how many more errors there are."""
    error = exc.errors()[0]
    shown = "" if secret else f" = {error.get('input')!r}"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return ConfigError(f"{where}{shown}: {error['msg']}{more}")



STORE_SCHEMES = ("redis://", "rediss://", "sqlite:///")
"""How a store URL may start (Redis, or a SQLite file by its absolute path)."""


def _blank_is_none(value: Any) -> Any:
    return None if value == "" else value


class WorkerSettings(HandoffSettings):
    """How ``handoff run`` serves calls (LiveKit's ``AgentServer``)."""

    section = "worker"

    flow: str
    """The flow, ``MODULE:ATTRIBUTE`` (``HANDOFF_FLOW``; the command's argument)."""
    max_jobs: int = Field(8, ge=1)
    """``HANDOFF_MAX_JOBS``: calls per worker; load = active jobs / max_jobs."""
    load_threshold: float = Field(0.9, gt=0, le=1)
    """``HANDOFF_LOAD_THRESHOLD``: above it LiveKit sends the worker no jobs."""
    drain_timeout: int = Field(600, ge=0)
    """``HANDOFF_DRAIN_TIMEOUT``: seconds calls get after SIGTERM."""
    health_port: int = Field(8081, ge=0, le=65535)
    """``HANDOFF_HEALTH_PORT``: the health endpoints (``/live``, ``/ready``, ``/worker``)."""
    metrics_port: int | None = Field(9100, ge=1, le=65535)
    """``HANDOFF_METRICS_PORT`` / ``--metrics-port``: Prometheus ``/metrics`` ("" or 0: off)."""
    idle_processes: int | None = Field(None, ge=0)
    """``HANDOFF_IDLE_PROCESSES``: warm job processes (LiveKit's default when unset)."""
    agent_name: str = Field("", validation_alias=AliasChoices("agent_name", "LIVEKIT_AGENT_NAME"))
    """``LIVEKIT_AGENT_NAME``: explicit dispatch."""
    checkpoint_dir: str | None = None
    """``HANDOFF_CHECKPOINT_DIR``: SQLite checkpoints of calls."""
    register_retries: int = Field(16, ge=0)
    """``HANDOFF_REGISTER_RETRIES``: attempts to register with LiveKit, then exit 1."""

    @classmethod
    def from_env(cls, flow: str, environ: Mapping[str, str] | None = None,
                 **flags: Any) -> Self:
        """:meth:`load` with the flow first, as ``handoff run FLOW`` gives it."""
        return cls.load(environ, flow=flow, **flags)

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _metrics_off(cls, value: Any) -> Any:
        return None if value in ("", 0, "0") else value

    @field_validator("idle_processes", "checkpoint_dir", mode="before")
    @classmethod
    def _unset(cls, value: Any) -> Any:
        return _blank_is_none(value)


class StoreSettings(HandoffSettings):
    """Where checkpoints and the event log go."""

    section = "stores"

    checkpoint_store: str = ""
    """``HANDOFF_CHECKPOINT_STORE``: ``redis://host:port/db`` or ``sqlite:///path``."""
    checkpoint_dir: str = ""
    """``HANDOFF_CHECKPOINT_DIR``: a folder for ``checkpoints.db`` (without a store URL)."""
    event_store: str = ""
    """``HANDOFF_EVENT_STORE``: ``redis://…``, ``sqlite:///path`` or ``off``; unset: next
    to the checkpoints."""
    event_retention_days: float = Field(7.0, gt=0)
    """``HANDOFF_EVENT_RETENTION_DAYS``: events older than this are forgotten."""
    event_max_calls: int = Field(10_000, ge=1)
    """``HANDOFF_EVENT_MAX_CALLS``: at most this many calls are kept."""

    @field_validator("checkpoint_store", "event_store")
    @classmethod
    def _store_url(cls, value: str, info: ValidationInfo) -> str:
        off = ("", "off") if info.field_name == "event_store" else ("",)
        if value in off or value.startswith(STORE_SCHEMES):
            return value
        raise ValueError("use redis://host:port/db or sqlite:///path/to/file.db"
                         + (" (or off)" if len(off) > 1 else ""))

    @property
    def checkpoints_configured(self) -> bool:
        return bool(self.checkpoint_store or self.checkpoint_dir)


class InspectorSettings(HandoffSettings):
    """``handoff inspect`` and ``--inspect``: where it listens, who may read it."""

    section = "inspector"
    model_config = SettingsConfigDict(env_prefix="HANDOFF_INSPECT_")

    host: str = "127.0.0.1"
    """``HANDOFF_INSPECT_HOST``: not loopback needs a token."""
    port: int = Field(8765, ge=0, le=65535)
    """``HANDOFF_INSPECT_PORT``: its port (0: any free port)."""
    token: SecretStr | None = None
    """``HANDOFF_INSPECT_TOKEN``: required to read the inspector (never shown in an error)."""
    stale_after: float = Field(15.0, gt=0)
    """``HANDOFF_INSPECT_STALE_AFTER``: seconds without a heartbeat before a call's
    writer counts as stopped."""

    @field_validator("token", mode="before")
    @classmethod
    def _no_token(cls, value: Any) -> Any:
        return _blank_is_none(value)

    @property
    def token_value(self) -> str | None:
        return None if self.token is None else self.token.get_secret_value()
