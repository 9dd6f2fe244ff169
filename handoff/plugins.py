"""Any LiveKit plugin from configuration: a provider name (or ``module:factory``) and options.

A tier's LLM and a state's STT/TTS are all made the same way::

    make("llm", "anthropic", model="claude-3-5-haiku-latest", api_key=key,
         options={"max_tokens": 512, "parallel_tool_calls": False})

- a provider name ``X`` is the LiveKit plugin ``livekit.plugins.X`` and its class ``LLM``,
  ``STT`` or ``TTS`` (``openai``, ``anthropic``, ``google``, ``groq``, ``deepgram``,
  ``cartesia``, ``elevenlabs``, … whatever plugin is installed; ``pip install
  'livekit-handoff[anthropic]'`` and so on install the common ones);
- ``package.module:factory`` is any callable returning the object (your own wrapper, a
  plugin's alternative constructor such as ``livekit.plugins.openai:LLM.with_ollama``).

The common fields map onto whatever the constructor calls them (``voice`` is ``voice_id``
for ElevenLabs and ``voice_name`` for Google; ``language`` is ``language_code`` or
``languages`` where so named); ``options`` are passed as they are. A field or option the
constructor does not take is an error naming the ones it does take, raised before the
constructor runs. Building an object never touches the network: LiveKit plugins connect
on first use.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from .errors import ConfigError, PluginError

Kind = Literal["llm", "stt", "tts", "realtime"]

DEFAULT_KEYS: dict[str, str] = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google": "GOOGLE_API_KEY",
    "groq": "GROQ_API_KEY",
    "deepgram": "DEEPGRAM_API_KEY",
    "cartesia": "CARTESIA_API_KEY",
    "elevenlabs": "ELEVEN_API_KEY",
}
"""The environment variable each plugin itself reads its key from (``X_API_KEY`` otherwise)."""

_ALIASES: dict[str, tuple[str, ...]] = {
    "model": ("model", "model_name", "model_id"),
    "voice": ("voice", "voice_id", "voice_name"),
    "language": ("language", "language_code", "languages"),
}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def check_provider(provider: str, where: str) -> None:
    """Refuse a provider spec that is neither a plugin name nor ``module:factory``."""
    if not (_NAME.match(provider) or _PATH.match(provider)):
        raise ConfigError(
            f"{where}: provider {provider!r} is neither a LiveKit plugin name (openai, "
            "anthropic, google, groq, …) nor a 'package.module:factory' path"
        )


def default_key_env(provider: str) -> str:
    """The environment variable a provider's key is read from unless the config names one."""
    if provider in DEFAULT_KEYS:
        return DEFAULT_KEYS[provider]
    if _NAME.match(provider):
        return f"{provider.upper()}_API_KEY"
    return ""  # a factory finds its own key


def package_of(provider: str) -> str:
    """What to install for ``provider`` (the PyPI name of a LiveKit plugin, or its module)."""
    if ":" in provider:
        return provider.split(":", 1)[0].split(".", 1)[0]
    return f"livekit-plugins-{provider}"


def is_installed(provider: str) -> bool:
    """True when the provider's module can be imported (checked without importing it)."""
    module = provider.split(":", 1)[0] if ":" in provider else f"livekit.plugins.{provider}"
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def factory(kind: Kind, provider: str) -> Callable[..., Any]:
    """The constructor of ``kind`` for ``provider`` (imports the plugin)."""
    if ":" in provider:
        module_name, attr = provider.split(":", 1)
    elif kind == "realtime":  # every plugin's speech-to-speech model lives in .realtime
        module_name, attr = f"livekit.plugins.{provider}.realtime", "RealtimeModel"
    else:
        module_name, attr = f"livekit.plugins.{provider}", kind.upper()
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(
            f"provider {provider!r} needs the module {module_name} ({exc}); install it: "
            f"pip install {package_of(provider)}"
        ) from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise PluginError(f"provider {provider!r}: {module_name} has no {attr}")
        target = getattr(target, part)
    if not callable(target):
        raise PluginError(f"provider {provider!r}: {module_name}:{attr} is not callable")
    made: Callable[..., Any] = target
    return made


def make(
    kind: Kind,
    provider: str,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    options: Mapping[str, Any] | None = None,
    **fields: Any,
) -> Any:
    """A LiveKit LLM/STT/TTS object of ``provider``, offline (no request is made).

    ``fields`` are the common ones (``model``, ``voice``, ``language``, ``instructions``…;
    None means "the plugin's default"), mapped onto the constructor's own names.
    """
    make_it = factory(kind, provider)
    accepted: Mapping[str, inspect.Parameter]
    try:
        accepted = inspect.signature(make_it).parameters
    except (TypeError, ValueError):
        accepted = {}
    open_ended = not accepted or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    kwargs: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None:
            continue
        names = _ALIASES.get(name, (name,))
        found = next((n for n in names if n in accepted), None if not open_ended else name)
        if found is None:
            raise PluginError(
                f"{provider} {kind.upper()} takes no {name!r} (it takes: "
                f"{', '.join(n for n in accepted if n != 'self')}); set the plugin's own "
                "argument in the options table instead")
        kwargs[found] = [value] if found == "languages" and isinstance(value, str) else value
    if base_url:
        if "base_url" not in accepted and not open_ended:
            raise PluginError(f"{provider} {kind.upper()} takes no base_url")
        kwargs["base_url"] = base_url
        if api_key is None and "api_key" in accepted:
            api_key = "not-needed"  # a local OpenAI-compatible server ignores the key
    if api_key is not None and ("api_key" in accepted or (open_ended and ":" in provider)):
        kwargs["api_key"] = api_key
    for name, value in (options or {}).items():
        if not open_ended and name not in accepted:
            raise PluginError(
                f"{provider} {kind.upper()} has no option {name!r}; its options are: "
                f"{', '.join(n for n in accepted if n != 'self')}")
        kwargs[name] = value
    try:
        return make_it(**kwargs)
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(f"{provider} {kind.upper()} could not be made: {exc}") from exc
