"""The shared Context of a call and the brief that carries it across handoffs."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel, ConfigDict

_BRIEF_VALUE_LIMIT = 200


class Context(BaseModel):
    """The typed memory of one call, shared by every State of a Flow.

    Subclass it with the fields your flow learns (caller name, account, verified…).
    Assignments are validated, so a tool that writes a wrong type fails at once
    instead of corrupting the call. It lives as ``session.userdata``.
    Mark a field sensitive with ``Field(json_schema_extra={"pii": True})``.
    """

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    def brief(self) -> str:
        """The context as compact text for an LLM: set fields only, one per line.

        Fields marked sensitive (``pii``) are left out: handoff never puts them in a
        prompt; tools can still read them from ``ctx.userdata``.
        """
        hidden = sensitive_fields(type(self))
        lines = []
        for name, value in self:
            if name in hidden or value is None or value == "" or value == [] or value == {}:
                continue
            text = value if isinstance(value, str) else repr(value)
            if len(text) > _BRIEF_VALUE_LIMIT:
                text = text[: _BRIEF_VALUE_LIMIT - 1] + "…"
            lines.append(f"- {name}: {text}")
        return "\n".join(lines)


@functools.cache
def sensitive_fields(model: type[BaseModel]) -> frozenset[str]:
    """Names of the fields marked ``{"pii": True}`` in their json_schema_extra."""
    names = set()
    for name, field in model.model_fields.items():
        extra: Any = field.json_schema_extra
        if isinstance(extra, dict) and extra.get("pii"):
            names.add(name)
    return frozenset(names)
