"""Keeping sensitive Context values out of spans, logs, metrics and checkpoint text.

A Context field is sensitive when it is marked ``Field(json_schema_extra={"pii": True})``.
Its *value* must never reach telemetry, and the plain-text parts of a checkpoint
(transition log, chat history) must not carry it either. Field names are fine to
show; values are replaced by :data:`REDACTED`.

Transition arguments and refusal reasons are free text an LLM or a guard wrote, so
they are scrubbed by value: every occurrence of a sensitive field's current value
is replaced. Values shorter than :data:`MIN_SCRUB_LENGTH` characters are not
scrubbed by value (a ``"1"`` would blank every digit); keep such fields out of
free text by design.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from .context import sensitive_fields

REDACTED = "[redacted]"
MIN_SCRUB_LENGTH = 3
_MAX_PASSES = 8


class Redactor:
    """Scrubs the sensitive values of one Context (read afresh on every call)."""

    def __init__(self, context: BaseModel) -> None:
        self.context = context
        self.fields = sensitive_fields(type(context))

    def values(self) -> list[str]:
        """The current sensitive values, as text, longest first."""
        found: set[str] = set()
        for name in self.fields:
            found.update(_texts(getattr(self.context, name, None)))
        return sorted((v for v in found if len(v) >= MIN_SCRUB_LENGTH), key=len, reverse=True)

    def text(self, text: str, values: Iterable[str] | None = None) -> str:
        """``text`` with every sensitive value replaced by ``[redacted]``."""
        vals = list(self.values() if values is None else values)
        if not vals or not text:
            return text
        pattern = re.compile("|".join(re.escape(v) for v in vals))
        # the marker next to what follows can spell a value again ("d]]" in "d]]]"):
        # repeat until stable; if it never is, nothing of the text is kept
        for _ in range(_MAX_PASSES):
            scrubbed = pattern.sub(REDACTED, text)
            if scrubbed == text:
                return text
            text = scrubbed
        return REDACTED if pattern.search(text) else text

    def value(self, value: Any, values: Iterable[str] | None = None) -> Any:
        """A JSON-like value with sensitive text scrubbed at every depth."""
        vals = list(self.values() if values is None else values)
        if not vals:
            return value
        return _walk(value, lambda s: self.text(s, vals))

    def context_dump(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the Context's plain fields, scrubbed; what must be kept apart), JSON-ready.

        The second part holds the sensitive fields, and the true value of any plain
        field that quotes a sensitive value (an LLM copied the PIN into ``topic``):
        ``{**plain, **apart}`` is the whole Context again.
        """
        data = self.context.model_dump(mode="json")
        apart = {k: data.pop(k) for k in list(data) if k in self.fields}
        values = self.values()
        if values:
            for key, value in data.items():
                scrubbed = self.value(value, values)
                if scrubbed != value:
                    apart[key] = value
                    data[key] = scrubbed
        return data, apart


def _texts(value: Any) -> Iterable[str]:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str | int | float):
        yield str(value)
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _texts(v)
    elif isinstance(value, list | tuple | set | frozenset):
        for v in value:
            yield from _texts(v)
    elif isinstance(value, BaseModel):
        yield from _texts(value.model_dump(mode="json"))


def _walk(value: Any, fix: Any) -> Any:
    if isinstance(value, str):
        return fix(value)
    if isinstance(value, Mapping):
        return {k: _walk(v, fix) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v, fix) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = str(value)
        fixed = fix(text)
        return value if fixed == text else fixed
    return value
