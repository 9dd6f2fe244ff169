"""Checkpoint: what a call needs to resume, as a versioned JSON document.

Format 1 (``"format": 1``)::

    {
      "format": 1,
      "call_id": "room-42",
      "flow": {"name": "callcenter", "version": "1"},
      "state": "Billing",
      "seq": 7,                       # grows with every checkpoint of the call
      "saved_at": 1795000000.0,
      "context": {...},               # the Context's plain fields (JSON)
      "sensitive": {...} | "<sealed>",# its pii fields (and the true value of any plain
                                      # field quoting one), apart; sealed if a Sealer is set
      "return_stack": ["Triage"],     # states a `to=RETURN` transition comes back to
      "log": [{"source", "target", "trigger", "arguments", "at", "by", "result"?, "turn"?}, ...],
      "history": [{"role": "user"|"assistant", "text": "..."}, ...],  # last N messages
      "ended": false,                 # true: a tombstone, the call is over (nothing else kept)
      "migration_failure": {"to", "error", "at"}   # only on a checkpoint `handoff migrate`
    }                                              # could not migrate (kept as it was)

The stored text is always valid JSON that any UTF-8 store accepts: a lone surrogate
an LLM sent (``"\\ud800"``) is written as its ``\\u`` escape, and a number that is
not finite (only possible where the Context allows it, or in a logged argument) as
the string ``"NaN"``/``"Infinity"``/``"-Infinity"``. Reading validates the whole
document, so a malformed one is refused (:class:`CheckpointFormatError`) before any
of it is used.

When a call ends its checkpoint is replaced by a *tombstone* (``"ended": true``,
no context): a newer ``seq`` than any of the call's checkpoints, so a late write of
the ended call can never bring it back, and a new call on the same id starts fresh.

The log and history are plain text for people reading a store: sensitive values
are scrubbed out of them (see :mod:`handoff.redaction`). The context and the
sensitive section are kept whole, since resuming must lose nothing.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, cast

from livekit.agents import llm

from ..errors import CheckpointFormatError
from ..records import TransitionRecord
from ..redaction import SCALARS, Redactor, dump_inputs, same_inputs

if TYPE_CHECKING:
    from ..run import FlowRun

FORMAT = 1
DEFAULT_HISTORY_LIMIT = 20
_STORED: dict[str, Any] = {"separators": (",", ":"), "ensure_ascii": False, "allow_nan": False,
                           "default": str}
"""How the stored form is encoded (before its fallbacks: not finite, lone surrogates)."""
_encode = json.JSONEncoder(**_STORED).encode
"""``json.dumps(value, **_STORED)`` without making an encoder at every call."""


class Sealer(Protocol):
    """Encrypts the sensitive section of a checkpoint (e.g. with Fernet or a KMS key)."""

    def seal(self, data: bytes) -> str: ...

    def unseal(self, token: str) -> bytes: ...


@dataclass(slots=True)
class Checkpoint:
    """One saved moment of a call. ``to_json``/``from_json`` are the stored form."""

    call_id: str
    flow: str
    flow_version: str
    state: str
    seq: int
    context: dict[str, Any]
    sensitive: dict[str, Any] | str = field(default_factory=dict)
    return_stack: list[str] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, str]] = field(default_factory=list)
    saved_at: float = 0.0
    ended: bool = False
    """A tombstone: the call is over; it must never be resumed."""
    migration_failure: dict[str, Any] | None = None
    """Set by ``handoff migrate`` on a checkpoint it could not migrate: to which version,
    why, and when (see :mod:`handoff.persistence.migrate`)."""
    encoded_log: list[str] | None = field(default=None, repr=False, compare=False)
    """Each ``log`` entry already in its stored JSON (:func:`encode_entry`), or None.

    Set by :func:`capture` from the call's :class:`CaptureCache`, so that writing a
    checkpoint encodes what changed, not the whole log again (the write runs in a
    thread, but JSON encoding holds the GIL, so the call's loop waits for it)."""
    encoded_history: list[str] | None = field(default=None, repr=False, compare=False)
    """Each ``history`` message already in its stored JSON, or None (as ``encoded_log``:
    a message is encoded once in a call, not at every write)."""
    deferred: tuple[list[Entry], list[Message | dict[str, str]]] | None = field(
        default=None, repr=False, compare=False)
    """The log entries and messages of a capture whose stored form is not made yet
    (``log`` and ``history`` are empty until :meth:`settle`): the Checkpointer's
    captures, scrubbed and encoded by its writer (in its own thread for a SQLite store),
    not on the call's loop."""

    def settle(self) -> Checkpoint:
        """Make ``log`` and ``history`` (and their JSON) of a deferred capture; itself."""
        deferred = self.deferred
        if deferred is not None:
            entries, messages = deferred
            self.log = [entry.form() for entry in entries]
            encoded = [entry.json() for entry in entries]
            self.encoded_log = None if None in encoded else cast("list[str]", encoded)
            history: list[dict[str, str]] = []
            said: list[str] | None = []
            for message in messages:
                if isinstance(message, Message):
                    history.append(message.form())
                    if said is not None:
                        said.append(message.json())
                else:  # a resumed call's earlier message: left to the write, whole
                    history.append(message)
                    said = None
            self.history, self.encoded_history = history, said
            self.deferred = None
        return self

    # -- stored form ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        self.settle()
        out = {
            "format": FORMAT,
            "call_id": self.call_id,
            "flow": {"name": self.flow, "version": self.flow_version},
            "state": self.state,
            "seq": self.seq,
            "saved_at": self.saved_at,
            "context": self.context,
            "sensitive": self.sensitive,
            "return_stack": self.return_stack,
            "log": self.log,
            "history": self.history,
            "ended": self.ended,
        }
        if self.migration_failure is not None:
            out["migration_failure"] = self.migration_failure
        return out

    def to_json(self) -> str:
        """The stored form: strict JSON (no bare NaN), encodable as UTF-8 whatever it holds."""
        data: Any = self.to_dict()  # settles it first
        ahead = {key: encoded for key, encoded, value in (
            ("log", self.encoded_log, self.log), ("history", self.encoded_history, self.history))
            if encoded is not None and len(encoded) == len(value)}
        if ahead:
            # the same text json.dumps makes of ``data``, the lists encoded ahead as they are
            try:
                text = "{" + ",".join(
                    f'"{key}":' + ("[" + ",".join(ahead[key]) + "]" if key in ahead
                                   else _encode(value))
                    for key, value in data.items()) + "}"
                text.encode("utf-8")
                return text
            except (ValueError, UnicodeEncodeError):  # the fallbacks below, on the whole
                pass
        try:
            text = _encode(data)
        except ValueError:  # a number that is not finite
            data = _finite(data)
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: kept, as its \u escape
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=True, default=str)
        return text

    @classmethod
    def tombstone(cls, call_id: str, flow: str, flow_version: str, seq: int) -> Checkpoint:
        """What is stored once a call is over: nothing of it, only that it ended."""
        return cls(call_id=call_id, flow=flow, flow_version=flow_version, state="", seq=seq,
                   context={}, saved_at=time.time(), ended=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Checkpoint:
        """Parse and validate a stored checkpoint; CheckpointFormatError on any defect."""
        try:
            data = json.loads(text, parse_constant=_no_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CheckpointFormatError(f"checkpoint is not JSON: {exc}") from exc
        fmt = data.get("format") if isinstance(data, dict) else None
        if fmt != FORMAT:
            raise CheckpointFormatError(
                f"checkpoint format {fmt!r} is not supported (this handoff reads {FORMAT})"
            )
        try:
            return cls(
                call_id=_typed(data["call_id"], str, "call_id"),
                flow=_typed(_typed(data["flow"], dict, "flow")["name"], str, "flow.name"),
                flow_version=str(data["flow"]["version"]),
                state=_typed(data["state"], str, "state"),
                seq=_typed(data["seq"], int, "seq"),
                context=_typed(data["context"], dict, "context"),
                sensitive=_typed(data.get("sensitive") or {}, (dict, str), "sensitive"),
                return_stack=[_typed(s, str, "return_stack")
                              for s in _typed(data.get("return_stack") or [], list,
                                              "return_stack")],
                log=[_log_entry(e) for e in _typed(data.get("log") or [], list, "log")],
                history=[_message(m) for m in _typed(data.get("history") or [], list,
                                                     "history")],
                saved_at=float(_typed(data.get("saved_at") or 0.0, (int, float), "saved_at")),
                ended=_typed(data.get("ended", False), bool, "ended"),
                migration_failure=_typed(data.get("migration_failure"), (dict, type(None)),
                                         "migration_failure"),
            )
        except KeyError as exc:
            raise CheckpointFormatError(f"checkpoint has no {exc.args[0]!r}") from exc

    # -- reading it back -------------------------------------------------------------
    def context_data(self, sealer: Sealer | None = None) -> dict[str, Any]:
        """The whole Context as saved: plain and sensitive fields together."""
        secret = self.sensitive
        if isinstance(secret, str):
            if sealer is None:
                raise CheckpointFormatError(
                    "the checkpoint's sensitive fields are sealed; pass the Sealer that wrote it"
                )
            secret = json.loads(sealer.unseal(secret))
        return {**self.context, **secret}

    def resealed(self, sealer: Sealer | None) -> Checkpoint:
        """This checkpoint with its sealed section opened and sealed again by ``sealer``
        (its current key); itself when nothing is sealed. Raises when it does not open."""
        if not isinstance(self.sensitive, str):
            return self
        if sealer is None:
            raise CheckpointFormatError("its pii section is sealed and HANDOFF_SEAL_KEYS is "
                                        "not set")
        secret = json.loads(sealer.unseal(self.sensitive))
        return replace(self, sensitive=sealer.seal(json.dumps(secret).encode()))

    def records(self) -> list[TransitionRecord]:
        """The transition log as records (arguments as stored, i.e. scrubbed)."""
        return [
            TransitionRecord(e["source"], e["target"], e["trigger"], dict(e.get("arguments") or {}),
                             float(e["at"]), e.get("by", "llm"), e.get("result"),
                             int(e.get("turn", 0)))
            for e in self.log
        ]

    def chat_ctx(self) -> llm.ChatContext:
        """The saved recent history as a LiveKit chat context."""
        ctx = llm.ChatContext.empty()
        for message in self.history:
            text = message.get("text", "")
            if message.get("role") == "user":
                ctx.add_message(role="user", content=text)
            elif message.get("role") == "assistant":
                ctx.add_message(role="assistant", content=text)
        return ctx

    def fingerprint(self) -> tuple[Any, ...]:
        """What the checkpoint says, without when it was taken (to skip identical writes).
        A deferred capture's messages compare as their stored forms would."""
        deferred = self.deferred
        if deferred is not None:
            return (self.state, self.context, self.sensitive, self.return_stack,
                    len(deferred[0]), deferred[1], self.ended)
        return (self.state, self.context, self.sensitive, self.return_stack, len(self.log),
                self.history, self.ended)


def _typed(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CheckpointFormatError(f"checkpoint field {where!r} is malformed: {value!r:.60}")
    return value


def _no_constant(name: str) -> Any:
    raise CheckpointFormatError(f"checkpoint holds a bare {name}, which JSON does not allow")


def _log_entry(entry: Any) -> dict[str, Any]:
    _typed(entry, dict, "log")
    for key in ("source", "target", "trigger"):
        _typed(entry.get(key), str, f"log.{key}")
    _typed(entry.get("arguments") or {}, dict, "log.arguments")
    _typed(entry.get("at"), (int, float), "log.at")
    _typed(entry.get("turn", 0), int, "log.turn")
    if entry.get("by", "llm") not in ("llm", "code", "failover"):
        raise CheckpointFormatError(f"checkpoint log entry moved by {entry.get('by')!r}")
    return entry


def _message(message: Any) -> dict[str, str]:
    _typed(message, dict, "history")
    if message.get("role") not in ("user", "assistant"):
        raise CheckpointFormatError(f"checkpoint history role {message.get('role')!r}")
    _typed(message.get("text"), str, "history.text")
    return message


def _finite(value: Any) -> Any:
    """``value`` with non-finite numbers as the strings pydantic reads back."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class Message:
    """A history message as a checkpoint stores it, scrubbed when first needed (by the
    writer, off the call's loop): what it needs is read on the loop when captured (its
    role and text; LiveKit does not change an item once added) with the sensitive
    ``values`` of that moment (a list never changed after)."""

    __slots__ = ("_form", "_json", "redactor", "role", "text", "values")

    def __init__(self, role: str, text: str, redactor: Redactor, values: list[str]) -> None:
        self.role, self.text, self.redactor, self.values = role, text, redactor, values
        self._form: dict[str, str] | None = None
        self._json: str | None = None

    def form(self) -> dict[str, str]:
        """``{"role", "text"}``, the text scrubbed (made once; shared, never changed)."""
        form = self._form
        if form is None:
            form = self._form = {"role": self.role,
                                 "text": self.redactor.text(self.text, self.values)}
        return form

    def json(self) -> str:
        """:meth:`form` as :meth:`Checkpoint.to_json` writes it (made once)."""
        text = self._json
        if text is None:
            text = self._json = _encode(self.form())
        return text

    def __eq__(self, other: object) -> bool:
        """Whether the stored forms are equal (scrubbing only when that is the only way
        to tell: the same text with the same values scrubs the same)."""
        if self is other:
            return True
        if isinstance(other, Message):
            if self.role != other.role:
                return False
            values = self.values
            if values is other.values or values == other.values:
                if self.text == other.text:
                    return True
                if not values:  # nothing to scrub: the texts are the stored ones
                    return False
            return self.form() == other.form()
        if isinstance(other, dict):
            return self.form() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


def _immutable(record: TransitionRecord) -> bool:
    """Whether ``record`` holds only immutable values (a record is frozen, but a list or
    dict an LLM sent as an argument may be kept and changed in place after the move)."""
    if type(record.result) not in SCALARS:
        return False
    return all(type(value) in SCALARS for value in record.arguments.values())


class Entry:
    """A transition log entry as a checkpoint stores it, scrubbed when first needed (as
    :class:`Message`; a capture makes and encodes it at once when the record holds a list or
    a dict, see :func:`_immutable`)."""

    __slots__ = ("_form", "_json", "record", "redactor", "values")

    def __init__(self, record: TransitionRecord, redactor: Redactor, values: list[str]) -> None:
        self.record, self.redactor, self.values = record, redactor, values
        self._form: dict[str, Any] | None = None
        self._json: str | None = None

    def form(self) -> dict[str, Any]:
        """The stored entry, scrubbed (made once; shared, never changed)."""
        form = self._form
        if form is None:
            form = self._form = _log_stored(self.record, self.redactor, self.values)
        return form

    def json(self) -> str | None:
        """:meth:`form` as :meth:`Checkpoint.to_json` writes it, or None if it needs its
        fallbacks (a number that is not finite)."""
        text = self._json
        if text is None:
            text = self._json = encode_entry(self.form()) or ""
        return text or None


class CaptureCache:
    """What the captures of one call reuse from the one before, so that a capture costs
    what changed since, not the length of the call.

    Every part is keyed by the sensitive values it was scrubbed with: when those change,
    it is made afresh. Entries are shared between checkpoints and never changed after.
    """

    __slots__ = ("dump", "inputs", "limit", "log", "log_of", "log_view", "read", "read_last",
                 "read_of", "recent", "recent_view", "redactor", "sealed", "values")

    def __init__(self) -> None:
        self.values: list[str] = []
        """The sensitive values the log entries and messages were scrubbed with."""
        self.log: list[Entry] = []
        """The stored form of ``log_of``'s records (made when first needed)."""
        self.log_of: list[TransitionRecord] = []
        self.recent: list[Message] = []
        """The stored form of the last ``limit`` messages with text among the first ``read``
        items of ``read_of`` (a session's history; made when first needed)."""
        self.limit = 0
        self.read_of: list[llm.ChatItem] | None = None
        self.read = 0
        self.read_last: llm.ChatItem | None = None
        """``read_of[read - 1]`` when it was read: an item inserted before it moves it."""
        self.sealed: dict[str, str] = {}
        """The last sealed section of the call by its plain text: an unchanged section is
        not sealed again (a fresh nonce would make every capture differ, so identical
        checkpoints would be written again, and sealing would run on the call's path)."""
        self.log_view: list[Entry] | None = None
        """``log`` as the last checkpoint holds it (a copy, shared by the checkpoints until
        a record is added), or None when it must be copied again."""
        self.recent_view: list[Message] | None = None
        """``recent`` as the last checkpoint holds it, likewise."""
        self.dump: tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]] = ((), {}, {})
        """(:func:`~handoff.redaction.dump_inputs` of the last capture's Context, its plain
        fields, its sensitive ones): the same inputs dump the same."""
        self.inputs: tuple[Any, ...] = ()
        self.redactor: Redactor | None = None
        """What the last capture read besides the Context and the history (see
        :meth:`unchanged`); () when it cannot tell."""

    def redactor_of(self, context: Any) -> Redactor:
        """A Redactor of ``context``: the same one while it is the same Context, so that
        its sensitive values are read again only when they may have changed."""
        redactor = self.redactor
        if redactor is None or redactor.context is not context:
            redactor = self.redactor = Redactor(context)
        return redactor

    def scrubbed_with(self, values: list[str]) -> None:
        """Forget what was scrubbed with other values."""
        if values != self.values:
            self.values = values
            self._forget_log()
            self.read_of = None
            self.recent_view = None

    def log_entries(self, records: list[TransitionRecord], redactor: Redactor,
                    values: list[str]) -> list[Entry]:
        """The stored form of ``records``: only the ones not seen yet are added."""
        done = len(self.log_of)
        # a run's log only grows, or is replaced whole (a restore): new records throughout
        if done and (done > len(records) or records[0] is not self.log_of[0]
                     or records[done - 1] is not self.log_of[-1]):
            self._forget_log()
            done = 0
        if len(records) > done:
            added = records[done:]
            for record in added:
                entry = Entry(record, redactor, values)
                if not _immutable(record):  # what it holds may change: written as it is now
                    entry.json()
                self.log.append(entry)
            self.log_of.extend(added)
            self.log_view = None
        view = self.log_view
        if view is None:
            view = self.log_view = list(self.log)
        return view

    def recent_messages(self, items: list[llm.ChatItem], limit: int, redactor: Redactor,
                        values: list[str]) -> list[Message]:
        """The stored form of the last ``limit`` user/assistant messages with text in
        ``items`` (a session's history; scrubbed when first needed): only the items added
        since the last call are read.

        LiveKit only inserts into a session's history, by creation time. An item inserted
        before the ones read last time (it moves the last one read), a shorter list or
        another list is read afresh, from its end.
        """
        done = self.read
        if (items is not self.read_of or limit != self.limit or len(items) < done
                or (done and items[done - 1] is not self.read_last)):
            self.recent = _stored_messages(reversed(items), limit, redactor, values)
            self.recent.reverse()
            self.read_of, self.limit = items, limit
            self.recent_view = None
        elif len(items) > done:
            added = _stored_messages(items[done:], -1, redactor, values)
            if added:
                self.recent.extend(added)
                del self.recent[:-limit]
                self.recent_view = None
        self.read = len(items)
        self.read_last = items[-1] if items else None
        view = self.recent_view
        if view is None:
            view = self.recent_view = list(self.recent)
        return view

    def history_unchanged(self, items: list[llm.ChatItem], limit: int) -> bool:
        """Whether :meth:`recent_messages` of ``items`` would return what it returned last
        (with the same values): the items added since are none of them a user or
        assistant message. Then they count as read."""
        done = self.read
        if (items is not self.read_of or limit != self.limit or len(items) < done
                or (done and items[done - 1] is not self.read_last)):
            return False
        for item in itertools.islice(items, done, None):
            if item.type == "message" and item.role in ("user", "assistant"):
                return False
        self.read = len(items)
        self.read_last = items[-1] if items else None
        return True

    def same_dump(self, read: tuple[Any, ...]) -> bool:
        """Whether ``read`` (:func:`~handoff.redaction.dump_inputs` of the Context now) is
        what the last dump read: its fields hold the very objects they held then
        (immutable scalars), with the same sensitive values."""
        return bool(read) and same_inputs(read, self.dump[0])

    def context_dump(self, redactor: Redactor, values: list[str], read: tuple[Any, ...],
                     same: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """``redactor.context_dump(values)``: the last one's dicts again when ``same``
        (:meth:`same_dump` of ``read``; the dicts are shared, never changed)."""
        _, plain, secret = self.dump
        if not same:
            plain, secret = redactor.context_dump(values)
            self.dump = (read, plain, secret)
        return plain, secret

    def unchanged(self, run: FlowRun[Any], same: bool, limit: int,
                  earlier: list[dict[str, str]] | None) -> bool:
        """Whether a capture of ``run`` now would hold what the last one held: ``same``
        (:meth:`same_dump` of its Context now) says it dumps as it did then, and its
        state, return stack, log and history are as they were (and ``limit`` and
        ``earlier`` what that capture was given)."""
        if not (same and self.inputs):
            return False
        log, seen = run.log, self.log_of
        if self.inputs != (run.state, tuple(run.return_stack), len(log), run.attached, limit,
                           earlier):
            return False
        if log and (not seen or log[0] is not seen[0] or log[-1] is not seen[-1]):
            return False
        return not run.attached or limit <= 0 or self.history_unchanged(
            run.session.history.items, limit)

    def _forget_log(self) -> None:
        self.log, self.log_of, self.log_view = [], [], None


def encode_entry(entry: Any) -> str | None:
    """``entry`` as :meth:`Checkpoint.to_json` writes it, or None if it is not finite."""
    try:
        return _encode(entry)
    except ValueError:
        return None


def _log_stored(r: TransitionRecord, redactor: Redactor, values: list[str]) -> dict[str, Any]:
    return {"source": r.source, "target": r.target, "trigger": r.trigger,
            "arguments": redactor.value(r.arguments, values), "at": r.at, "by": r.by,
            **({"turn": r.turn} if r.turn else {}),
            **({} if r.result is None else {"result": redactor.value(r.result, values)})}


def capture(
    run: FlowRun[Any],
    call_id: str,
    seq: int,
    *,
    history_limit: int = DEFAULT_HISTORY_LIMIT,
    sealer: Sealer | None = None,
    earlier: list[dict[str, str]] | None = None,
    cache: CaptureCache | None = None,
) -> Checkpoint:
    """A checkpoint of ``run`` now. Cheap and synchronous: safe on the conversation path.

    ``earlier`` is history from before this session (a resumed call's), kept in front
    of the session's own messages. ``cache`` carries what the previous capture of the
    same call made (:class:`CaptureCache`): the log entries and messages already
    scrubbed, the sealed section; without it everything is made afresh.
    """
    if cache is None:
        cache = CaptureCache()
    redactor = cache.redactor_of(run.context)
    values = redactor.values()
    read = dump_inputs(run.context, values)
    return _capture(run, call_id, seq, history_limit, sealer, earlier, cache, redactor, values,
                    read, cache.same_dump(read)).settle()


def _capture(run: FlowRun[Any], call_id: str, seq: int, history_limit: int,
             sealer: Sealer | None, earlier: list[dict[str, str]] | None, cache: CaptureCache,
             redactor: Redactor, values: list[str], read: tuple[Any, ...],
             same: bool) -> Checkpoint:
    """:func:`capture` with the Context's redactor, its ``values``, what its dump reads
    and whether that is what the cache's dump read, deferred: its log and history are
    made by :meth:`Checkpoint.settle`."""
    cache.inputs = ()  # set again once this capture is made
    cache.scrubbed_with(values)
    plain, secret = cache.context_dump(redactor, values, read, same)
    sensitive: dict[str, Any] | str = secret
    if sealer is not None and secret:
        text = json.dumps(secret)
        token = cache.sealed.get(text)
        if token is None:
            token = sealer.seal(text.encode())
            cache.sealed.clear()
            cache.sealed[text] = token
        sensitive = token
    log = run.log
    return_stack = list(run.return_stack)
    checkpoint = Checkpoint(
        call_id, run.flow.name, run.flow.version, run.state, seq, plain, sensitive,
        return_stack, [], [], time.time(),
        deferred=(cache.log_entries(log, redactor, values),
                  recent_history(run, history_limit, redactor, values, earlier, cache)),
    )
    cache.inputs = (checkpoint.state, tuple(return_stack), len(log), run.attached,
                    history_limit, earlier)
    return checkpoint


def capture_changed(
    run: FlowRun[Any],
    call_id: str,
    seq: int,
    *,
    cache: CaptureCache,
    history_limit: int = DEFAULT_HISTORY_LIMIT,
    sealer: Sealer | None = None,
    earlier: list[dict[str, str]] | None = None,
    defer: bool = False,
) -> Checkpoint | None:
    """:func:`capture`, or None when it would hold what the cache's last capture held
    (:meth:`CaptureCache.unchanged`): known without dumping the Context or copying
    anything (a turn's tool calls, a state change of the agent).

    ``defer``: leave the scrubbing and encoding of its log and history to
    :meth:`Checkpoint.settle` (the writer's, off the call's loop).
    """
    redactor = cache.redactor_of(run.context)
    values = redactor.values()
    read = dump_inputs(run.context, values)
    same = cache.same_dump(read)
    if cache.unchanged(run, same, history_limit, earlier):
        return None
    checkpoint = _capture(run, call_id, seq, history_limit, sealer, earlier, cache, redactor,
                          values, read, same)
    return checkpoint if defer else checkpoint.settle()


def recent_history(
    run: FlowRun[Any], limit: int, redactor: Redactor, values: list[str],
    earlier: list[dict[str, str]] | None = None, cache: CaptureCache | None = None,
) -> list[Message | dict[str, str]]:
    """The last ``limit`` user/assistant messages (``earlier`` ones first, scrubbed; the
    session's as :class:`Message`, scrubbed when first needed).

    ``cache`` keeps the call's recent messages across captures, all scrubbed with
    ``values``, so a capture reads only the items added since the one before.
    """
    if limit <= 0:
        return []
    if not run.attached:
        return list((earlier or [])[-limit:])
    items = run.session.history.items
    out: list[Message | dict[str, str]]
    if cache is not None:  # the cache's view: shared by the checkpoints, never changed
        out = cast("list[Message | dict[str, str]]",
                   cache.recent_messages(items, limit, redactor, values))
    else:
        out = list(_stored_messages(reversed(items), limit, redactor, values))
        out.reverse()
    if earlier and len(out) < limit:
        before: list[Message | dict[str, str]] = [
            {"role": m["role"], "text": redactor.text(m["text"], values)}
            for m in earlier[len(out) - limit:]]
        out = before + out
    return out


def _stored_messages(items: Iterable[llm.ChatItem], limit: int, redactor: Redactor,
                     values: list[str]) -> list[Message]:
    """The user/assistant messages with text in ``items``, in their order, to be
    scrubbed with ``values``; the first ``limit`` of them (all if it is negative). A text
    scrubs to an empty one only if it is empty (a value is never empty, its marker
    never is)."""
    out: list[Message] = []
    for item in items:
        if limit == 0:
            break
        if item.type != "message" or item.role not in ("user", "assistant"):
            continue
        text = item.raw_text_content
        if text and "<" in text and item.role == "assistant":
            text = item.text_content  # LiveKit's expressive markup out (a tag: never without <)
        if text:
            limit -= 1
            out.append(Message(item.role, text, redactor, values))
    return out
