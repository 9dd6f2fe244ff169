"""Secrets: ask by name, get the value from the first provider that has it.

A :class:`SecretChain` asks its providers in order — environment (development),
files (a mounted Kubernetes Secret or Vault Agent output: one file per key),
HashiCorp Vault / OpenBao KV v2 (``pip install 'livekit-handoff[vault]'``) — and caches
what it finds for a TTL::

    secrets = SecretChain.from_env()              # configured by HANDOFF_SECRETS_* / VAULT_*
    secrets.require(["LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"])   # fail at start-up, by name
    Tiers.load(...) / Tiers(configs, secrets=secrets)            # a chain is a SecretLookup

Values never reach logs, spans or exception messages: the chain hands out
:class:`Secret` objects whose ``repr``/``str`` are redacted, logs names and provider
names only, and wraps provider failures in messages written without the value.
Call :meth:`Secret.reveal` at the one place the plain text is needed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import AliasChoices, Field, SecretStr, field_validator

from .errors import MissingSecretError, SecretError, SecretProviderError
from .settings import HandoffSettings

logger = logging.getLogger("handoff.secrets")

DEFAULT_TTL = 300.0
DEFAULT_SECRETS_DIR = "/var/run/secrets/handoff"
REDACTED = "***"


class Secret:
    """A secret value that does not show itself: ``repr`` and ``str`` are redacted.

    Compare, hash and pass it around freely; call :meth:`reveal` where the plain
    text is needed (an HTTP header, a client constructor).
    """

    __slots__ = ("_value", "name", "source")

    def __init__(self, name: str, value: str, source: str = "") -> None:
        self.name = name
        self.source = source
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.name!r}, {REDACTED}, source={self.source!r})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return self._value == other._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # never pickled into a job process by accident
        raise TypeError(f"Secret {self.name!r} cannot be pickled")


@runtime_checkable
class SecretProvider(Protocol):
    """Where secrets come from. ``get`` returns None when the provider lacks the name.

    ``describe`` is what error messages and logs show (no credentials in it).
    A provider raises :class:`SecretProviderError` when it cannot answer at all.
    """

    def get(self, name: str) -> str | None: ...

    def describe(self) -> str: ...


class EnvProvider:
    """Environment variables (development, CI), optionally with a prefix."""

    def __init__(self, environ: Mapping[str, str] | None = None, *, prefix: str = "") -> None:
        self._environ = os.environ if environ is None else environ
        self.prefix = prefix

    def get(self, name: str) -> str | None:
        value = self._environ.get(self.prefix + name)
        return value if value else None

    def describe(self) -> str:
        return f"env{f'[{self.prefix}*]' if self.prefix else ''}"


class FileProvider:
    """One file per secret in a directory: a mounted Kubernetes Secret, Vault Agent output.

    The file ``<directory>/<NAME>`` holds the value; one trailing newline is dropped
    (``echo`` and ``kubectl create secret --from-file`` add one). A missing
    directory is not an error: the provider then has nothing.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def get(self, name: str) -> str | None:
        if not name or "/" in name or name.startswith("."):
            return None  # a key, never a path
        path = self.directory / name
        try:
            text = path.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as exc:
            raise SecretProviderError(
                f"{self.describe()}: cannot read {name}: {type(exc).__name__}"
            ) from None
        text = text.removesuffix("\n").removesuffix("\r")
        return text or None

    def describe(self) -> str:
        return f"files[{self.directory}]"


class VaultProvider:
    """HashiCorp Vault / OpenBao KV version 2, through ``hvac`` (the ``vault`` extra).

    Every secret name is a field of one KV entry: ``<mount>/data/<path>`` (e.g.
    ``secret/data/handoff`` holding ``LIVEKIT_API_KEY``, ``OPENAI_API_KEY``…). The
    whole entry is read once per chain cache refresh. Authentication is a token
    (``token=`` or ``token_file=``, the file a Vault Agent sink or a CSI driver writes).
    """

    def __init__(
        self,
        url: str,
        *,
        path: str = "handoff",
        mount: str = "secret",
        token: str | None = None,
        token_file: str | os.PathLike[str] | None = None,
        namespace: str | None = None,
        timeout: float = 5.0,
        verify: bool | str = True,
    ) -> None:
        try:
            import hvac
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise SecretError(
                "VaultProvider needs hvac: pip install 'livekit-handoff[vault]'"
            ) from exc
        if token is None and token_file is None:
            raise SecretError("VaultProvider needs token= or token_file=")
        self.url = url
        self.path = path
        self.mount = mount
        self._token = token
        self._token_file = Path(token_file) if token_file is not None else None
        self._client = hvac.Client(url=url, namespace=namespace, timeout=timeout, verify=verify)

    def _current_token(self) -> str:
        if self._token_file is not None:
            try:
                return self._token_file.read_text().strip()
            except OSError as exc:
                raise SecretProviderError(
                    f"{self.describe()}: cannot read token file {self._token_file}: "
                    f"{type(exc).__name__}"
                ) from None
        assert self._token is not None
        return self._token

    def read_all(self) -> dict[str, str]:
        """Every field of the KV entry (empty when the entry does not exist)."""
        import hvac.exceptions

        self._client.token = self._current_token()  # re-read: agents rotate the file
        try:
            response = self._client.secrets.kv.v2.read_secret_version(
                path=self.path, mount_point=self.mount, raise_on_deleted_version=True
            )
        except hvac.exceptions.InvalidPath:
            return {}
        except hvac.exceptions.VaultError as exc:
            # the server's error list never echoes secret data; keep the text short
            detail = "; ".join(getattr(exc, "errors", None) or []) or type(exc).__name__
            raise SecretProviderError(f"{self.describe()}: {detail[:200]}") from None
        except Exception as exc:  # connection refused, TLS, timeout
            raise SecretProviderError(
                f"{self.describe()}: {type(exc).__name__}"
            ) from None
        data = response.get("data", {}).get("data", {}) or {}
        return {str(k): str(v) for k, v in data.items() if v is not None}

    def get(self, name: str) -> str | None:
        return self.read_all().get(name) or None

    def describe(self) -> str:
        return f"vault[{self.url} {self.mount}/{self.path}]"


def _vault(name: str) -> Any:
    """A field read from ``VAULT_<NAME>`` (the variable Vault's own tools read)."""
    return AliasChoices(name, f"VAULT_{name.removeprefix('vault_').upper()}")


class SecretSettings(HandoffSettings):
    """Where :meth:`SecretChain.from_env` looks secrets up (``[tool.handoff.secrets]``);
    a blank variable counts as unset."""

    section = "secrets"
    blank_env_is_unset = True

    providers: tuple[Literal["env", "files", "vault"], ...] = Field(
        ("env", "files", "vault"), validation_alias=AliasChoices("providers", "HANDOFF_SECRETS"))
    """``HANDOFF_SECRETS``: the providers in order, comma-separated (one not configured
    is left out)."""
    secrets_dir: str = DEFAULT_SECRETS_DIR
    """``HANDOFF_SECRETS_DIR``: the files provider's directory, one file per secret."""
    secrets_ttl: float = Field(DEFAULT_TTL, ge=0)
    """``HANDOFF_SECRETS_TTL``: seconds a secret (or its absence) is cached."""
    vault_addr: str | None = Field(None, validation_alias=_vault("vault_addr"))
    """``VAULT_ADDR``: the Vault / OpenBao server (with a token: the vault provider)."""
    vault_token: SecretStr | None = Field(None, validation_alias=_vault("vault_token"))
    """``VAULT_TOKEN``: the token (never shown in an error)."""
    vault_token_file: str | None = Field(None, validation_alias=_vault("vault_token_file"))
    """``VAULT_TOKEN_FILE``: a file holding the token (Vault Agent, Kubernetes)."""
    vault_mount: str = "secret"
    """``HANDOFF_VAULT_MOUNT``: the KV v2 mount."""
    vault_path: str = "handoff"
    """``HANDOFF_VAULT_PATH``: the secret's path under the mount."""
    vault_namespace: str | None = Field(None, validation_alias=_vault("vault_namespace"))
    """``VAULT_NAMESPACE``: the namespace (Vault Enterprise / HCP)."""
    vault_cacert: str | None = Field(None, validation_alias=_vault("vault_cacert"))
    """``VAULT_CACERT``: the CA bundle that signed Vault's certificate."""

    @field_validator("providers", mode="before")
    @classmethod
    def _order(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [p.strip() for p in value.split(",") if p.strip()]
        unknown = [p for p in value if p not in ("env", "files", "vault")]
        if unknown:
            raise ValueError(f"unknown provider {unknown[0]!r}; use env, files, vault")
        return value


@dataclass(slots=True)
class _Entry:
    secret: Secret | None
    expires: float


class SecretChain:
    """Providers asked in order; the first that has a name wins. Cached for ``ttl`` s.

    A chain is callable as a ``SecretLookup`` (``name -> str | None``), which is what
    :class:`handoff.tiers.Tiers` takes. Misses are cached too (Vault is not asked
    on every turn for a key it lacks). A provider that fails is skipped with a
    warning naming the provider; if no later provider has the secret the failure
    is part of the error ``require`` raises.
    """

    def __init__(
        self,
        providers: Iterable[SecretProvider],
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.providers = list(providers)
        self.ttl = ttl
        self._clock = clock
        self._cache: dict[str, _Entry] = {}
        self._failures: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    # -- building ---------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SecretChain:
        """The chain a process configures through its environment.

        - ``HANDOFF_SECRETS`` — provider order, default ``env,files,vault``
          (a provider that is not configured is left out);
        - ``HANDOFF_SECRETS_DIR`` — the files provider's directory
          (default ``/var/run/secrets/handoff``);
        - ``VAULT_ADDR`` with ``VAULT_TOKEN`` or ``VAULT_TOKEN_FILE`` — the Vault provider,
          reading ``HANDOFF_VAULT_MOUNT`` (default ``secret``) / ``HANDOFF_VAULT_PATH``
          (default ``handoff``), ``VAULT_NAMESPACE`` and ``VAULT_CACERT`` optional;
        - ``HANDOFF_SECRETS_TTL`` — cache seconds (default 300).

        All are :class:`SecretSettings` (also ``[tool.handoff.secrets]``); a bad value is
        a one-line :class:`~handoff.errors.ConfigError` naming the variable.
        """
        settings = SecretSettings.load(environ)
        providers: list[SecretProvider] = []
        for kind in settings.providers:
            if kind == "env":
                providers.append(EnvProvider(environ))
            elif kind == "files":
                providers.append(FileProvider(settings.secrets_dir))
            elif settings.vault_addr and (settings.vault_token or settings.vault_token_file):
                providers.append(VaultProvider(
                    settings.vault_addr, mount=settings.vault_mount, path=settings.vault_path,
                    token=None if settings.vault_token is None else (
                        settings.vault_token.get_secret_value()),
                    token_file=settings.vault_token_file, namespace=settings.vault_namespace,
                    verify=settings.vault_cacert or True,
                ))
        return cls(providers, ttl=settings.secrets_ttl)

    # -- asking -----------------------------------------------------------------
    def get(self, name: str) -> Secret | None:
        """The secret ``name`` from the first provider that has it, or None."""
        now = self._clock()
        with self._lock:
            entry = self._cache.get(name)
            if entry is not None and entry.expires > now:
                return entry.secret
        secret = self._resolve(name)
        with self._lock:
            self._cache[name] = _Entry(secret, now + self.ttl)
        return secret

    def __call__(self, name: str) -> str | None:
        """``SecretLookup``: the plain value or None (for Tiers and livekit clients)."""
        secret = self.get(name)
        return secret.reveal() if secret is not None else None

    def require(self, names: Iterable[str] | Mapping[str, str]) -> dict[str, Secret]:
        """Every name resolved, or :class:`MissingSecretError` naming each one missing.

        ``names`` may map each name to what needs it (``{"OPENAI_API_KEY": "tier 'fast'
        (LLM)"}``); the error then says so. Call it at start-up so a missing key fails
        the process, not a call.
        """
        needed_by = dict(names) if isinstance(names, Mapping) else {}
        found: dict[str, Secret] = {}
        missing: list[str] = []
        for name in names:
            secret = self.get(name)
            if secret is None:
                missing.append(name)
            else:
                found[name] = secret
        if missing:
            failures = sorted({f for n in missing for f in self._failures.get(n, [])})
            raise MissingSecretError(missing, self.describe(), failures, needed_by)
        return found

    def invalidate(self, name: str | None = None) -> None:
        """Forget one cached name (or all): the next ``get`` asks the providers again."""
        with self._lock:
            if name is None:
                self._cache.clear()
            else:
                self._cache.pop(name, None)

    def describe(self) -> list[str]:
        return [p.describe() for p in self.providers]

    def _resolve(self, name: str) -> Secret | None:
        failures: list[str] = []
        for provider in self.providers:
            try:
                value = provider.get(name)
            except SecretProviderError as exc:
                failures.append(str(exc))
                logger.warning("secret provider failed while looking up %s: %s", name, exc)
                continue
            if value is not None:
                logger.debug("secret %s resolved from %s", name, provider.describe())
                self._failures.pop(name, None)
                return Secret(name, value, provider.describe())
        self._failures[name] = failures
        logger.debug("secret %s not found in %s", name, ", ".join(self.describe()))
        return None

    def __repr__(self) -> str:
        return f"<SecretChain {' → '.join(self.describe())} ttl={self.ttl:g}s>"
