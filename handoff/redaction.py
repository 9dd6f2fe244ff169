"""Keeping sensitive Context values out of spans, logs, metrics and checkpoint text.

A Context field is sensitive when it is marked ``Field(json_schema_extra={"pii": True})``.
Its *value* must never reach telemetry, and the plain-text parts of a checkpoint
(transition log, chat history) must not carry it either. Field names are fine to
show; values are replaced by :data:`REDACTED`.

Transition arguments and refusal reasons are free text an LLM or a guard wrote, so
they are scrubbed by value: every occurrence of any value a sensitive field ever
held in the call (current, replaced, cleared, rolled back, or rejected by its
validation: see :class:`~handoff.context.SensitiveMemory`) is replaced. Values
shorter than :data:`MIN_SCRUB_LENGTH` characters are not scrubbed by value (a
``"1"`` would blank every digit); keep such fields out of free text by design.

Logs know no call, so they are scrubbed of the sensitive values of every live
Context of the process: :func:`install_log_scrubbing` (run when handoff is imported)
rewrites each log record as it is made (message, arguments, traceback), and a filter
on handoff's and LiveKit's loggers also scrubs the ``extra`` fields LiveKit's JSON
formatter prints. It costs one integer comparison per record while no Context holds
a sensitive value.
"""

from __future__ import annotations

import functools
import logging
import operator
import re
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from .context import Context, memory_generation, remembered_texts, sensitive_fields, sensitive_texts

REDACTED = "[redacted]"
MIN_SCRUB_LENGTH = 3
_MAX_PASSES = 8


class Redactor:
    """Scrubs the sensitive values of one Context (read afresh on every call; a Context
    without sensitive fields, whose values are only what it remembered, is read again
    only when some Context remembered a new one: see :func:`memory_generation`)."""

    __slots__ = ("_pattern", "_remembered", "context", "fields")

    def __init__(self, context: BaseModel) -> None:
        self.context = context
        self.fields = sensitive_fields(type(context))
        self._remembered: tuple[int, list[str]] = (-1, [])
        self._pattern: tuple[list[str], re.Pattern[str]] | None = None  # the last values'

    def values(self) -> list[str]:
        """Every sensitive value the Context holds or ever held, as text, longest first
        (the list is shared: do not change it)."""
        if not self.fields:  # nothing to read off the fields (most Contexts, every turn)
            generation, remembered = self._remembered
            if generation != memory_generation():  # its memory only grows, and then this
                generation = memory_generation()  # (read first: a change meanwhile reads again)
                held = (self.context.sensitive_history() if isinstance(self.context, Context)
                        else frozenset())
                remembered = _scrubbable(held) if held else []
                self._remembered = (generation, remembered)
            return remembered
        held = (self.context.sensitive_history() if isinstance(self.context, Context)
                else frozenset())
        found = set(held)
        for name in self.fields:
            found.update(sensitive_texts(getattr(self.context, name, None)))
        return _scrubbable(found)

    def text(self, text: str, values: Iterable[str] | None = None) -> str:
        """``text`` with every sensitive value replaced by ``[redacted]``."""
        vals = list(self.values() if values is None else values)
        if not vals or not text:
            return text
        return scrub(text, self.pattern(vals))

    def pattern(self, values: list[str]) -> re.Pattern[str]:
        """The scrub pattern of ``values`` (:meth:`values`, not empty): made again only when
        they changed (a call scrubs every line, tool output and argument with the same few)."""
        made = self._pattern
        if made is None or made[0] != values:
            made = self._pattern = (values, re.compile("|".join(re.escape(v) for v in values)))
        return made[1]

    def value(self, value: Any, values: Iterable[str] | None = None) -> Any:
        """A JSON-like value with sensitive text scrubbed at every depth."""
        vals = list(self.values() if values is None else values)
        if not vals:
            return value
        return scrub_value(value, self.pattern(vals))

    def context_dump(self, values: list[str] | None = None
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the Context's plain fields, scrubbed; what must be kept apart), JSON-ready.

        The second part holds the sensitive fields, and the true value of any plain
        field that quotes a sensitive value (an LLM copied the PIN into ``topic``):
        ``{**plain, **apart}`` is the whole Context again. ``values``: :meth:`values`,
        if the caller has them already.
        """
        data = self.context.model_dump(mode="json")
        apart = {k: data.pop(k) for k in list(data) if k in self.fields} if self.fields else {}
        if values is None:
            values = self.values()
        if values:
            for key, value in data.items():
                scrubbed = self.value(value, values)
                if scrubbed != value:
                    apart[key] = value
                    data[key] = scrubbed
        return data, apart


SCALARS = frozenset({str, int, float, bool, type(None)})
"""The types whose values cannot change in place: a field or argument holding one is the
same value while it is the same object."""


@functools.cache
def _dump_reads_fields_only(model: type[BaseModel]) -> bool:
    """Whether ``model_dump`` of ``model`` is a function of its fields' values alone (no
    computed field, no custom serializer that could read something else)."""
    decorators = model.__pydantic_decorators__
    return not (model.model_computed_fields or decorators.field_serializers
                or decorators.model_serializers)


def dump_inputs(context: BaseModel, values: list[str] | None) -> tuple[Any, ...]:
    """What :meth:`Redactor.context_dump` of ``context`` with ``values`` reads: (the
    Context, ``values``, its field values) when every field holds an immutable scalar, so
    that the same objects dump the same (:func:`same_inputs`); else ``()``: dump it
    afresh (a list or a model can change in place, unseen by any assignment; a write
    straight into ``__dict__``, as a rollback does, puts another object there)."""
    if values is None or not _dump_reads_fields_only(type(context)):
        return ()
    fields = tuple(context.__dict__.values())
    if not SCALARS.issuperset(map(type, fields)):  # one C call, not a loop of checks
        return ()
    return (context, values, fields)


def same_inputs(read: tuple[Any, ...], before: tuple[Any, ...]) -> bool:
    """Whether two :func:`dump_inputs` are of the same Context, values and field objects
    (identity, not equality: ``1 == True == 1.0`` and ``0.0 == -0.0`` dump differently;
    the values may be an equal list rather than the same one)."""
    return bool(read) and unchanged(read[0], read[1], before)


def unchanged(context: BaseModel, values: list[str] | None, before: tuple[Any, ...]) -> bool:
    """Whether :func:`dump_inputs` of ``context`` with ``values`` now would be
    :func:`same_inputs` as ``before``, without making it: the same Context and equal
    values (then its fields were all scalars), each field the very object it was."""
    if not before or before[0] is not context:
        return False
    was = before[1]
    if was is not values and was != values:
        return False
    fields, then = context.__dict__.values(), before[2]
    return len(fields) == len(then) and all(map(operator.is_, fields, then))


def scrub(text: str, pattern: re.Pattern[str]) -> str:
    """``text`` with every match of ``pattern`` (the values, escaped) replaced."""
    # the marker next to what follows can spell a value again ("d]]" in "d]]]"):
    # repeat until stable; if it never is, nothing of the text is kept
    for _ in range(_MAX_PASSES):
        scrubbed = pattern.sub(REDACTED, text)
        if scrubbed == text:
            return text
        text = scrubbed
    return REDACTED if pattern.search(text) else text


def scrub_value(value: Any, pattern: re.Pattern[str]) -> Any:
    """A JSON-like ``value`` with every match of ``pattern`` scrubbed at every depth (a
    number too, as its text). Needs no Context: a writer's thread can run it."""
    return _walk(value, lambda s: scrub(s, pattern))


def _scrubbable(texts: Iterable[str]) -> list[str]:
    return sorted((v for v in set(texts) if len(v) >= MIN_SCRUB_LENGTH), key=len, reverse=True)


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


# -- logs ------------------------------------------------------------------------------
_STANDARD_RECORD_KEYS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}
SCRUBBED_LOGGERS = ("handoff", "handoff.resume", "handoff.persistence", "handoff.worker",
                    "livekit", "livekit.agents", "asyncio")
"""Loggers whose records also get their ``extra`` fields scrubbed (a logger's filters
only see the records made by that logger, not by its children)."""


class _ProcessValues:
    """The scrub pattern for all live Contexts' sensitive values, rebuilt when they change."""

    def __init__(self) -> None:
        self.generation = 0
        self.pattern: re.Pattern[str] | None = None

    def current(self) -> re.Pattern[str] | None:
        if memory_generation() == self.generation:
            return self.pattern
        generation, texts = remembered_texts()
        values = _scrubbable(texts)
        self.pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None
        self.generation = generation
        return self.pattern


_process_values = _ProcessValues()


def scrub_record(record: logging.LogRecord) -> None:
    """Rewrite ``record`` in place without any live sensitive value: its message (with
    its arguments applied), its traceback (kept as text, as LiveKit's log queue does)
    and its ``extra`` fields."""
    pattern = _process_values.current()
    if pattern is None:
        return
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: leave it to the handler to report
        return
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        record.exc_info = None
    record.msg, record.args = scrub(message, pattern), None
    if record.exc_text:
        record.exc_text = scrub(record.exc_text, pattern)
    if record.stack_info:
        record.stack_info = scrub(record.stack_info, pattern)
    for key, value in list(vars(record).items()):
        if key not in _STANDARD_RECORD_KEYS and not key.startswith("_"):
            setattr(record, key, _scrub_extra(value, pattern))


def _scrub_extra(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str | int | float | Mapping | list | tuple | type(None)):
        return scrub_value(value, pattern)
    text = str(value)  # an object the formatter will print as text
    return scrub(text, pattern) if pattern.search(text) else value


class _ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        scrub_record(record)
        return True


_SCRUB_FILTER = _ScrubFilter()
_installed: list[Callable[..., logging.LogRecord]] = []


def install_log_scrubbing() -> None:
    """Scrub every log record of this process of live sensitive values (idempotent).

    A log record factory scrubs what a record holds when it is made; a filter on
    :data:`SCRUBBED_LOGGERS` scrubs the ``extra`` fields added after that.
    """
    for name in SCRUBBED_LOGGERS:
        logger = logging.getLogger(name)
        if _SCRUB_FILTER not in logger.filters:
            logger.addFilter(_SCRUB_FILTER)
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        scrub_record(record)
        return record

    _installed.append(previous)
    logging.setLogRecordFactory(make_record)
