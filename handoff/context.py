"""The shared Context of a call and the brief that carries it across handoffs."""

from __future__ import annotations

import contextvars
import functools
import itertools
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr

_BRIEF_VALUE_LIMIT = 200


class SensitiveMemory:
    """Every text the sensitive fields of one Context held or were offered.

    Kept for the life of the Context: a value that was replaced, cleared, rolled back
    or rejected by validation must stay out of logs and telemetry as much as the
    current one (see :mod:`handoff.redaction`).
    """

    __slots__ = ("__weakref__", "texts")

    def __init__(self) -> None:
        self.texts: set[str] = set()


_memories: weakref.WeakSet[SensitiveMemory] = weakref.WeakSet()
_generation = itertools.count(1)
_current_generation = [0]


def memory_generation() -> int:
    """A number that changes whenever some live Context remembers a new sensitive text."""
    return _current_generation[0]


def remembered_texts() -> tuple[int, list[str]]:
    """(a number that changes whenever the answer may have, every sensitive text held
    by any live Context of this process). For scrubbing logs, which know no call."""
    texts: set[str] = set()
    for memory in list(_memories):
        texts |= memory.texts
    return _current_generation[0], sorted(texts)


def sensitive_texts(value: Any) -> Iterator[str]:
    """The texts of a field value a scrubber must look for (numbers as written)."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str | int | float):
        yield str(value)
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from sensitive_texts(v)
    elif isinstance(value, list | tuple | set | frozenset):
        for v in value:
            yield from sensitive_texts(v)
    elif isinstance(value, BaseModel):
        yield from sensitive_texts(value.model_dump(mode="json"))


class ChangeJournal:
    """Who wrote which field of a Context while one transition was under way.

    A transition (its guard and body) writes as the journal's owner; anything else
    writing meanwhile (an ordinary tool of the same turn) is someone else. Undoing
    the transition restores exactly the fields its owner assigned, to the value they
    had just before, and leaves a field someone else wrote last as it is. A mutable
    field changed in place (``notes.append``) by nobody's assignment cannot be told
    apart: it is restored from ``snapshot``.
    """

    __slots__ = ("before", "snapshot", "theirs")

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.snapshot = snapshot
        self.before: dict[str, Any] = {}
        self.theirs: set[str] = set()

    def note(self, name: str, old: Any, mine: bool) -> None:
        if mine:
            self.before.setdefault(name, old)
            self.theirs.discard(name)
        else:  # written by someone else after us: theirs now
            self.before.pop(name, None)
            self.theirs.add(name)

    def undo(self, context: Context) -> None:
        """Put back what the owner changed, nothing else (no validation: old values)."""
        values = context.__dict__
        for name, old in self.before.items():
            values[name] = old
        for name, old in self.snapshot.items():
            if name not in self.before and name not in self.theirs and values.get(name) != old:
                values[name] = old


_journal_owner: contextvars.ContextVar[ChangeJournal | None] = contextvars.ContextVar(
    "handoff_journal_owner", default=None)


class Context(BaseModel):
    """The typed memory of one call, shared by every State of a Flow.

    Subclass it with the fields your flow learns (caller name, account, verified…).
    Assignments are validated, so a tool that writes a wrong type fails at once
    instead of corrupting the call; NaN and infinities are refused like any wrong
    value (they pass every ``<``/``>`` check a body could make). It lives as
    ``session.userdata``.

    Mark a field sensitive with ``Field(json_schema_extra={"pii": True})``. Every value
    such a field holds or is offered (including one its validation rejects) is
    remembered for the life of the Context, so handoff scrubs it from logs, spans,
    metrics, refusal reasons and checkpoint text even after it changed. Validation
    errors of a Context with sensitive fields do not quote the rejected input.
    A subclass that defines ``model_post_init`` must call ``super().model_post_init``.
    """

    model_config = ConfigDict(validate_assignment=True, extra="forbid", allow_inf_nan=False)

    _sensitive_memory: SensitiveMemory | None = PrivateAttr(default=None)
    _journals: list[ChangeJournal] | None = PrivateAttr(default=None)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if sensitive_fields(cls) and not cls.model_config.get("hide_input_in_errors"):
            # pydantic quotes a rejected input in its error text ("input_value='1234'")
            cls.model_config["hide_input_in_errors"] = True
            cls.model_rebuild(force=True)

    def model_post_init(self, context: Any, /) -> None:
        hidden = sensitive_fields(type(self))
        if hidden:
            self._remember(getattr(self, name, None) for name in hidden)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in sensitive_fields(type(self)):
            self._remember((self.__dict__.get(name), value))
        if name[0] != "_" and (journals := self._private()["_journals"]):
            owner, old = _journal_owner.get(), self.__dict__.get(name)
            for journal in journals:
                journal.note(name, old, journal is owner)
        super().__setattr__(name, value)

    def open_journal(self, snapshot: dict[str, Any]) -> tuple[ChangeJournal, contextvars.Token[Any]]:
        """Start journaling writes; the current task (and tasks it starts) write as its
        owner until ``close_journal``. ``snapshot``: the fields' values now (mutable ones
        copied), for in-place changes."""
        journal = ChangeJournal(snapshot)
        private = self._private()
        if private["_journals"] is None:
            private["_journals"] = []
        private["_journals"].append(journal)
        return journal, _journal_owner.set(journal)

    @staticmethod
    def start_owning(journal: ChangeJournal) -> contextvars.Token[Any]:
        """The current task writes as ``journal``'s owner (a later step of the same move,
        e.g. ``on_return``) until ``stop_owning``."""
        return _journal_owner.set(journal)

    @staticmethod
    def stop_owning(token: contextvars.Token[Any]) -> None:
        """The current task no longer writes as the journal's owner (its body returned)."""
        _journal_owner.reset(token)

    def close_journal(self, journal: ChangeJournal) -> None:
        """Stop journaling for ``journal`` (its transition committed or was undone)."""
        journals = self._private()["_journals"]
        if journals and journal in journals:
            journals.remove(journal)

    def _private(self) -> dict[str, Any]:
        """The private attributes' values, read directly: pydantic finds ``self._journals``
        only after a failed lookup and its own ``__getattr__`` (~1 µs, five times a move,
        and at every ordinary turn's scrubbing).
        Never None on a model with private attributes (pydantic's own invariant)."""
        private = self.__pydantic_private__
        assert private is not None
        return private

    def _remember(self, values: Iterable[Any]) -> None:
        private = self._private()
        memory = private["_sensitive_memory"]
        if memory is None:
            memory = private["_sensitive_memory"] = SensitiveMemory()
            _memories.add(memory)
        before = len(memory.texts)
        for value in values:
            memory.texts.update(sensitive_texts(value))
        if len(memory.texts) != before:
            _current_generation[0] = next(_generation)

    def remember_sensitive(self, values: Iterable[Any]) -> None:
        """Treat ``values`` as sensitive from now on, as if a pii field had held them:
        they are scrubbed from logs, spans, events, checkpoints and refusal reasons for
        the life of this Context (a tool argument marked pii, see
        :mod:`handoff.sensitive_args`)."""
        self._remember(values)

    def holds_sensitive(self) -> bool:
        """False when nothing of this Context can be sensitive yet: no field is marked
        pii and no value was remembered as sensitive (so a scrub would find nothing;
        checked before making one, at every tool call of a turn)."""
        return bool(sensitive_fields(type(self))) or (
            self._private()["_sensitive_memory"] is not None)

    def sensitive_history(self) -> frozenset[str]:
        """Every text a sensitive field of this Context held or was offered, so far."""
        memory = self._private()["_sensitive_memory"]
        return frozenset(memory.texts) if memory is not None else frozenset()

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
