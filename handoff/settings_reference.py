"""Every setting of every settings model as Markdown tables: the reference part of
``docs/configuration.md``, written from the models so it cannot drift from them.

    python -m handoff.settings_reference docs/configuration.md   # rewrite the page's tables

The tables sit between the page's ``<!-- settings:begin -->`` and ``<!-- settings:end -->``
lines; ``tests/test_settings_reference.py`` fails when they differ from the models.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .secrets import SecretSettings
from .settings import HandoffSettings, InspectorSettings, StoreSettings, WorkerSettings
from .telemetry.otel import OtelSettings
from .tiers import TierSettings, TierSpec, tier_variable
from .tools.call_control import OperatorSettings
from .voice import VoiceSettings

MODELS: tuple[type[HandoffSettings], ...] = (
    WorkerSettings, StoreSettings, InspectorSettings, TierSettings, VoiceSettings, SecretSettings,
    OtelSettings, OperatorSettings)
"""Every settings model, one per concern, in the page's order."""

BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"
_NAMED = re.compile(r"^``[A-Z][A-Z0-9_<>]*``(?: / ``[^`]+``)*:?\s*")
"""The variable a field's docstring opens with (the table has a column for it)."""


def _default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None or value == "" or value == {} or value == ():
        return "unset"
    if isinstance(value, tuple):
        value = ",".join(map(str, value))
    return f"`{value}`"


def _meaning(field: FieldInfo) -> str:
    text = _NAMED.sub("", " ".join((field.description or "").split())).strip(" .")
    return (text[:1].upper() + text[1:] + "." if text else "").replace("|", "\\|")


def _rows(model: type[BaseModel], variables: Any, key: str) -> list[str]:
    rows = ["| file key | environment variable | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        names = " / ".join(f"`{v}`" for v in variables(name)) or "—"
        secret = " (secret)" if field.annotation in (SecretStr, SecretStr | None) else ""
        rows.append(f"| `{key}{name}` | {names} | {_default(field)} | {_meaning(field)}{secret} |")
    return rows


def _section(model: type[HandoffSettings]) -> list[str]:
    title = " ".join((model.__doc__ or "").split("\n\n")[0].split())
    head = [f"### {model.__name__}", "", title, ""]
    if model is TierSettings:
        table = "`[tool.handoff.tiers.<name>]` (`[tiers.<name>]` in handoff.toml)"
        variables = lambda name: [tier_variable("<name>", name)] if name != "options" else []  # noqa: E731
        return [*head, f"Table: {table}.", "", *_rows(TierSpec, variables, ""), ""]
    table = f"`[tool.handoff.{model.section}]` (`[{model.section}]` in handoff.toml)"
    return [*head, f"Table: {table}.", "", *_rows(model, model.env_names, ""), ""]


def reference() -> str:
    """The tables of every model, as the page holds them between its markers."""
    lines: list[str] = []
    for model in MODELS:
        lines += _section(model)
    return "\n".join(lines)


def rewrite(page: Path) -> bool:
    """Put :func:`reference` between the page's markers; True when that changed it."""
    text = page.read_text()
    before, _, rest = text.partition(BEGIN)
    _, _, after = rest.partition(END)
    new = f"{before}{BEGIN}\n{reference()}\n{END}{after}"
    if new != text:
        page.write_text(new)
    return new != text


if __name__ == "__main__":
    print("rewritten" if rewrite(Path(sys.argv[1])) else "up to date")
