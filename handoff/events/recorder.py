"""EventLog: records what happens in each tracked call, and writes it off the call's path.

    events = EventLog(SQLiteEventStore("events.db")).install(flow)
    run = await flow.start(session, call_id="room-42")
    events.track(run, "room-42")

It is a flow observer (transitions, refusals, requested moves) and listens to the
call's ``AgentSession`` (transcript lines, tool calls, errors, LiveKit's latency
figures, the close). On the conversation path it only builds a small event (a tuple:
the writer makes the :class:`~handoff.events.Event` of it, in a thread of its own for a
SQLite store), redacted at the source with the sensitive values known then, and appends
it to an in-memory queue: microseconds. From a caller's line to the end of that turn
(the agent listening again) a call's events are held back, then queued with the values
known at the turn's end, which the writer scrubs from them again before it writes them:
what the caller says becomes a sensitive value only when a tool of that turn stores it
in a sensitive field (a live view shows the caller's line at the turn's end). A background
writer (in a thread of its own for a SQLite store, else a task on the call's loop: see
:mod:`handoff.background`) writes the queue to the store in batches, after waiting
``coalesce`` seconds so that the burst of a turn is one write. A failed write (store
outage) is logged and retried with backoff; the call never notices. The queue is
bounded (``max_pending`` events): past it the oldest events are dropped and counted in
``dropped``, leaving a gap in ``seq``.

A writer killed mid-call loses only what was still queued, or held for a turn that had
not ended (``backlog`` and ``flush`` see the queue only); the store's summary of
the call then says it never ended, and its ``seen_at`` (refreshed by a heartbeat
every ``heartbeat`` seconds while the call is live) tells a reader its writer stopped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from ..background import BackgroundWriter, off_loop
from ..observers import attach
from ..redaction import REDACTED, Redactor, dump_inputs, scrub_value, unchanged
from .event import Event
from .store import EventStore

if TYPE_CHECKING:
    from ..approval import ApprovalRecord
    from ..flow import Flow
    from ..records import Refusal, TransitionRecord
    from ..run import FlowRun

logger = logging.getLogger("handoff.events")
_time_ns = time.time_ns

MAX_TEXT = 4000
"""Characters of a transcript line or tool output kept in an event."""
LATENCY_KEYS = ("e2e_latency", "llm_node_ttft", "tts_node_ttfb", "transcription_delay",
                "end_of_turn_delay", "on_user_turn_completed_delay")
"""The figures of LiveKit's per-message ``MetricsReport`` that become ``latency`` events."""
_NOTHING_HIDDEN = hash(json.dumps({}, sort_keys=True, default=str))
MAX_HELD = 500
"""Most events of one call held back until its turn ends (then they are queued at once)."""


class _Rescrub:
    """An event's data still to be scrubbed with the values known at its turn's end."""

    __slots__ = ("data", "pattern")

    def __init__(self, data: dict[str, Any], pattern: re.Pattern[str]) -> None:
        self.data, self.pattern = data, pattern


_Made = tuple[tuple[str, str, str], int, int, str, str, dict[str, Any]]
"""An event as the call's loop makes it: ((call id, flow, flow version), seq, time in
nanoseconds, kind, state, data)."""
_Raw = tuple[tuple[str, str, str], int, int, str, str, "dict[str, Any] | _Rescrub"]
"""An event as the call's loop queues it (its data possibly left to scrub). The writer
makes the :class:`Event` of it (:func:`_built`), off the call's path where it has a thread
of its own."""


def _built(raw: _Raw) -> Event:
    """The :class:`Event` of a queued ``raw`` event (its data scrubbed, if that was left
    to the writer)."""
    (call_id, flow, version), seq, ns, kind, state, data = raw
    if isinstance(data, _Rescrub):
        data = scrub_value(data.data, data.pattern)
    return Event(call_id, seq, ns / 1e9, kind, state, flow, version, data)


class _Tracked:
    __slots__ = ("call_id", "closed", "context", "held", "ident", "over", "read", "redactor",
                 "requested", "secret", "seq", "triggers")

    def __init__(self, call_id: str, flow: Flow[Any], triggers: frozenset[str],
                 context: Any) -> None:
        self.call_id = call_id
        self.ident = (call_id, flow.name, flow.version)  # what every event of the call names
        self.triggers = triggers  # the flow's transition tools
        self.closed = asyncio.Event()
        self.over = False  # its session closed: its listeners (bound to this) do nothing more
        self.seq = 0
        self.context: dict[str, Any] = {}
        self.secret = 0  # hash of the sensitive values: detects their change, never shown
        self.requested: dict[str, float] = {}
        self.held: list[_Made] | None = None  # a turn's events, from the caller's line on
        self.read: tuple[Any, ...] = ()  # what the last context step read (redaction.dump_inputs)
        # the run's Context's (made again if it is replaced; let go when the call ends, as
        # this record may outlive it in the session's listeners)
        self.redactor: Redactor | None = Redactor(context)

    def redactor_of(self, run: FlowRun[Any]) -> Redactor:
        """A Redactor of ``run``'s Context: the same one while it is the same Context, so
        that its sensitive values are read again only when they may have changed."""
        redactor = self.redactor
        if redactor is None or redactor.context is not run.context:
            redactor = self.redactor = Redactor(run.context)
        return redactor


class _Added:
    """A stand-in for LiveKit's ``conversation_item_added`` event, for earlier items."""

    __slots__ = ("item",)

    def __init__(self, item: Any) -> None:
        self.item = item


class EventLog(BackgroundWriter[list[_Raw]]):
    """The event log of tracked runs, written to ``store`` by a background task.

    Args:
        store: where events go.
        coalesce: seconds the writer waits after waking, so a turn's burst is one batch.
        max_pending: most events queued; past it the oldest are dropped (and counted).
        max_batch: most events in one write.
        heartbeat: seconds between the writer's "still live" marks for its calls.
        purge_every: seconds between retention passes (by this writer).
        retry_delay: the first backoff after a failed write (seconds).
        max_retry_delay: the longest backoff after failed writes (seconds).
    """

    def __init__(
        self,
        store: EventStore,
        *,
        coalesce: float = 0.02,
        max_pending: int = 50_000,
        max_batch: int = 500,
        heartbeat: float = 5.0,
        purge_every: float = 300.0,
        retry_delay: float = 0.2,
        max_retry_delay: float = 5.0,
    ) -> None:
        super().__init__("handoff.event_writer", coalesce=coalesce, retry_delay=retry_delay,
                         max_retry_delay=max_retry_delay, threaded=store.any_thread)
        self.store = store
        self.max_pending = max_pending
        self.max_batch = max_batch
        self.heartbeat = heartbeat
        self.purge_every = purge_every
        self.writer = f"{socket.gethostname()}:{os.getpid()}"
        self.dropped = 0
        """Events dropped because the queue was full."""
        self.written = 0
        """Events written to the store."""
        self._runs: weakref.WeakKeyDictionary[FlowRun[Any], _Tracked] = weakref.WeakKeyDictionary()
        self._live: set[str] = set()
        self._flows: dict[tuple[str, str], Flow[Any]] = {}  # versions whose diagram is not stored yet
        self._stored_flows: set[tuple[str, str]] = set()
        self._queue: deque[_Raw] = deque()
        self._writing = 0
        self._beat: asyncio.Task[None] | None = None
        self._purged_at = time.monotonic()

    # -- wiring ----------------------------------------------------------------------
    def install(self, flow: Flow[Any]) -> EventLog:
        """Receive the transitions and refusals of ``flow``'s runs (only tracked ones are kept)."""
        if self not in flow.observers:
            flow.observers.append(self)
        return self

    def track(self, run: FlowRun[Any], call_id: str, *, resumed: bool = False) -> None:
        """Record ``run`` under ``call_id`` from now on (its session must be attached).

        A log not :meth:`install`-ed on the run's flow observes this run only
        (``run.observers``), never another run of the same flow."""
        if not run.attached:
            raise ValueError("track() needs a run attached to its session")
        if run in self._runs:
            return
        attach(run, self)  # this run only, unless installed on its flow
        self._runs[run] = tracked = _Tracked(
            call_id, run.flow, frozenset(edge.trigger for edge in run.flow.edges), run.context)
        self._live.add(call_id)
        key = (run.flow.name, run.flow.version)
        if key not in self._stored_flows:
            with self._lock:
                self._flows[key] = run.flow  # drawn by the writer, off the call's path
        tracked.context, tracked.secret = self._context(run)
        how = run.resumption  # set by resume_or_start: outcome, versions, migrations
        self._emit(run, tracked, "call_started", {
            "context": tracked.context, "resumed": resumed or how is not None,
            "writer": self.writer, **({"resumption": how.to_dict()} if how else {})})
        session = run.session
        for item in session.history.items:  # what was said before tracking began (an opening)
            self._on_item(run, tracked, _Added(item))
        # each callback holds the run (and so its record) already: no lookup per event;
        # they reach the session through the run's one listener per event name (partial:
        # no frame of its own between the listener and the handler)
        run.listen("conversation_item_added", partial(self._on_item, run, tracked))
        run.listen("function_tools_executed", partial(self._on_tools, run, tracked))
        run.listen("agent_state_changed", partial(self._on_agent_state, run, tracked))
        run.listen("error", partial(self._on_error, run, tracked))
        run.listen("close", partial(self._on_close, run))

    # -- observer hooks (synchronous, on the call's path) -------------------------------
    def on_transition_requested(self, run: FlowRun[Any], trigger: str, by: str) -> None:
        tracked = self._runs.get(run)
        if tracked is None:
            return
        tracked.requested[trigger] = time.perf_counter()
        self._emit(run, tracked, "transition_requested", {"trigger": trigger, "by": by})

    def on_transition(self, run: FlowRun[Any], record: TransitionRecord) -> None:
        tracked = self._runs.get(run)
        if tracked is None:
            return
        started = tracked.requested.pop(record.trigger, None)
        redactor = tracked.redactor_of(run)
        values = redactor.values()
        data = {"source": record.source, "target": record.target, "trigger": record.trigger,
                "by": record.by,
                "arguments": redactor.value(_plain(record.arguments), values)
                if record.arguments else {}}
        if record.result is not None:
            data["result"] = redactor.value(record.result, values) if values else record.result
        if record.dropped:
            data["dropped"] = list(record.dropped)
        data["duration_ms"] = (None if started is None
                               else round((time.perf_counter() - started) * 1000, 3))
        self._emit(run, tracked, "transition", data)
        self._context_step(run, tracked, redactor, values)

    def on_refusal(self, run: FlowRun[Any], refusal: Refusal) -> None:
        tracked = self._runs.get(run)
        if tracked is None:
            return
        tracked.requested.pop(refusal.trigger, None)
        self._emit(run, tracked, "refusal", {
            "trigger": refusal.trigger, "kind": refusal.kind,
            "reason": tracked.redactor_of(run).text(refusal.reason)})

    def on_approval(self, run: FlowRun[Any], record: ApprovalRecord) -> None:
        tracked = self._runs.get(run)
        if tracked is None:
            return
        redactor = tracked.redactor_of(run)
        self._emit(run, tracked, "approval", {
            "action": record.action, "question": redactor.text(record.question),
            "outcome": record.outcome,
            **({} if record.reason is None else {"reason": redactor.text(record.reason)})})

    # -- session listeners ----------------------------------------------------------------
    def _on_item(self, run: FlowRun[Any], tracked: _Tracked, event: Any) -> None:
        item = event.item
        if tracked.over or getattr(item, "type", None) != "message":
            return
        role = item.role
        if role == "user":
            if tracked.held is None:
                tracked.held = []  # until the turn's tools ran: they may store what was said
        elif role != "assistant":
            return
        redactor = tracked.redactor_of(run)
        values = redactor.values()
        text = item.text_content or ""
        if values:
            text = redactor.text(text, values)
        message = {"role": role, "text": text if len(text) <= MAX_TEXT else _cut(text),
                   "interrupted": bool(item.interrupted)}
        metrics = item.metrics
        if metrics and (figures := _latency(metrics)):  # and the turn's figures, queued with it
            self._emit(run, tracked, "message", message, ("latency", {"role": role, **figures}))
        else:
            self._emit(run, tracked, "message", message)
        self._context_step(run, tracked, redactor, values)

    def _on_tools(self, run: FlowRun[Any], tracked: _Tracked, event: Any) -> None:
        if tracked.over:
            return
        redactor = tracked.redactor_of(run)
        values = redactor.values()
        for call, output in event.zipped():
            arguments = _arguments(call.arguments)
            text = "" if output is None else str(output.output)
            if values:  # JSON data, scrubbed at every depth
                arguments, text = redactor.value(arguments, values), redactor.text(text, values)
            if len(text) > MAX_TEXT:
                text = _cut(text)
            is_error = bool(output is not None and output.is_error)
            transition = call.name in tracked.triggers
            self._emit(run, tracked, "tool_call", {
                "name": call.name, "arguments": arguments, "output": text, "is_error": is_error,
                "transition": transition})
            if is_error and not transition:  # transition tools report through refusals
                self._emit(run, tracked, "error", {"source": f"tool {call.name}", "message": text})
        self._context_step(run, tracked, redactor, values)

    def _on_agent_state(self, run: FlowRun[Any], tracked: _Tracked, event: Any) -> None:
        """The agent listens again: the turn ended, so what it held is released (most
        changes of the agent's state are not a turn's end; nothing once the call is over)."""
        if event.new_state == "listening" and not tracked.over:
            self._release(run, tracked)

    def _on_error(self, run: FlowRun[Any], tracked: _Tracked, event: Any) -> None:
        if tracked.over:
            return
        error = event.error
        cause = getattr(error, "error", None) or error
        self._emit(run, tracked, "error", {
            "source": str(getattr(error, "type", None) or type(error).__name__),
            "message": _cut(tracked.redactor_of(run).text(f"{type(cause).__name__}: {cause}")),
            "recoverable": bool(getattr(error, "recoverable", False))})

    def _on_close(self, run: FlowRun[Any], event: Any) -> None:
        tracked = self._runs.pop(run, None)
        if tracked is None:
            return
        tracked.over = True
        self._context_step(run, tracked)
        self._release(run, tracked)
        reason = str(getattr(event.reason, "value", event.reason))
        self._emit(run, tracked, "call_ended", {"reason": reason, "final": run.is_final()})
        self._live.discard(tracked.call_id)
        tracked.redactor = None  # nor its Context (or its sensitive values) from now on
        tracked.closed.set()

    async def wait_closed(self, run: FlowRun[Any], timeout: float) -> bool:
        """Wait until ``run``'s session closed (its ``call_ended`` is queued). False on timeout.

        A LiveKit job closes the session in a shutdown callback that runs alongside the
        worker's own: the worker waits for this before its last :meth:`flush`.
        """
        tracked = self._runs.get(run)
        if tracked is None:
            return True
        try:
            await asyncio.wait_for(tracked.closed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # -- building events ------------------------------------------------------------------
    def _context(self, run: FlowRun[Any], redactor: Redactor | None = None,
                 values: list[str] | None = None) -> tuple[dict[str, Any], int]:
        """The Context as shown (sensitive fields as ``[redacted]``) and a hash of the hidden
        part (``values``: the redactor's, if the caller has them already)."""
        redactor = Redactor(run.context) if redactor is None else redactor
        plain, apart = redactor.context_dump(values)  # plain fields come scrubbed
        if not apart:
            return plain, _NOTHING_HIDDEN
        hidden = {name: value for name, value in apart.items() if name not in plain}
        for name, value in hidden.items():  # a sensitive field: whether it is set, not its value
            plain[name] = None if value is None else REDACTED
        return plain, hash(json.dumps(hidden, sort_keys=True, default=str))

    def _context_step(self, run: FlowRun[Any], tracked: _Tracked,
                      redactor: Redactor | None = None, values: list[str] | None = None) -> None:
        """A ``context`` event with what changed since the last one, if anything did
        (``redactor`` and its ``values``: the caller's, made at this same moment)."""
        if run.in_transition:  # a body's changes belong to the transition's commit
            return
        if unchanged(run.context, values, tracked.read):  # the same objects: the same dump
            return
        read = dump_inputs(run.context, values)
        shown, secret = self._context(run, redactor, values)
        tracked.read = read
        changed = {k: [tracked.context.get(k), v] for k, v in shown.items()
                   if tracked.context.get(k) != v}
        if secret != tracked.secret:
            for name, value in shown.items():
                if value == REDACTED:
                    changed.setdefault(name, [tracked.context.get(name), REDACTED])
        if not changed:
            return
        tracked.context, tracked.secret = shown, secret
        self._emit(run, tracked, "context", {"changed": changed})

    def _emit(self, run: FlowRun[Any], tracked: _Tracked, kind: str, data: dict[str, Any],
              then: tuple[str, dict[str, Any]] | None = None) -> None:
        """Queue (or hold) an event, and the one ``then`` (kind, data) right after it: a
        tuple each here, made an :class:`Event` by the writer."""
        now = _time_ns()
        tracked.seq = seq = max(tracked.seq + 1, now // 1000)
        raws = [(tracked.ident, seq, now, kind, run.state, data)]
        if then is not None:
            now = _time_ns()
            tracked.seq = seq = max(seq + 1, now // 1000)
            raws.append((tracked.ident, seq, now, then[0], run.state, then[1]))
        held = tracked.held
        if held is None:
            self._enqueue(raws)
            return
        held += raws
        if len(held) >= MAX_HELD:  # a turn this long: write it rather than hold on
            self._release(run, tracked)

    def _release(self, run: FlowRun[Any], tracked: _Tracked) -> None:
        """Queue the events held since the caller's line, to be scrubbed again with the
        values known now: a caller says a card number before the tool that stores it in a
        sensitive field has run, so only now is it known to be one."""
        held, tracked.held = tracked.held, None
        if not held:
            return
        redactor = tracked.redactor_of(run)
        values = redactor.values()
        if values:  # else nothing to scrub, none to copy
            # with the values known now, by the writer (they are fixed: only the walk
            # through each event's data is left, and it needs no Context)
            pattern = redactor.pattern(values)
            self._enqueue([(ident, seq, ns, kind, state, _Rescrub(data, pattern))
                           for ident, seq, ns, kind, state, data in held])
        else:
            self._enqueue(held)

    # -- the writer (BackgroundWriter) -------------------------------------------------
    def _enqueue(self, events: Sequence[_Raw]) -> None:
        """Queue ``events`` (in order) and wake the writer once for all of them; past
        ``max_pending``, the oldest queued go."""
        try:
            self._ready()
        except RuntimeError:  # no running loop: nothing can write them
            with self._lock:
                self.dropped += len(events)
            return
        queue = self._queue
        threaded = self.threaded
        with self._lock:
            queue.extend(events)
            over = len(queue) - self.max_pending
            warn = self._drop_oldest(over) if over > 0 else 0
            kick = threaded and self._arm()
        if kick:
            self._schedule_kick()
        elif not threaded:
            self._signal()
        if warn:
            logger.warning("event queue full: %d events dropped so far", warn)

    def _drop_oldest(self, count: int) -> int:
        """Drop the ``count`` oldest queued events (holding ``_lock``); the count of drops
        to warn of: the first, then every thousandth (0: none of them now)."""
        queue = self._queue
        for _ in range(count):
            queue.popleft()
        before, self.dropped = self.dropped, self.dropped + count
        if self.dropped // 1000 > before // 1000:
            return self.dropped // 1000 * 1000
        return 1 if before == 0 else 0

    def _started(self, loop: asyncio.AbstractEventLoop) -> None:
        self._beat = loop.create_task(self._heartbeat_loop(), name="handoff.event_heartbeat")

    def _queued(self) -> bool:
        return bool(self._queue)

    def _take(self) -> list[_Raw]:
        batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
        self._writing = len(batch)
        return batch

    async def _write(self, work: list[_Raw]) -> None:
        await self._store_flows()
        await self.store.append([_built(raw) for raw in work], writer=self.writer)

    def _put_back(self, work: list[_Raw]) -> None:
        self._queue.extendleft(reversed(work))

    def _failed(self, work: list[_Raw], exc: Exception, retry_in: float) -> None:
        logger.warning("%d events not written: %s: %s; retrying in %.1fs",
                       len(work), type(exc).__name__, exc, retry_in)
        room = self.max_pending - len(self._queue)
        if room < len(work):
            self.dropped += len(work) - max(room, 0)
            work = work[len(work) - max(room, 0):]
        self._put_back(work)

    def _settled(self) -> None:
        self._writing = 0

    async def _written(self, work: list[_Raw], seconds: float) -> None:
        self.written += len(work)
        if time.monotonic() - self._purged_at > self.purge_every:
            self._purged_at = time.monotonic()
            try:
                await self.store.purge()
            except Exception as exc:
                logger.warning("event log retention pass failed: %s: %s", type(exc).__name__, exc)

    async def _store_flows(self) -> None:
        while self._flows:
            with self._lock:
                key, flow = next(iter(self._flows.items()))
            dot = await off_loop(_dot_source, flow)  # graphviz import, drawing
            await self.store.put_flow(key[0], key[1], dot)
            with self._lock:
                del self._flows[key]
            self._stored_flows.add(key)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            if not self._live:
                continue
            try:
                await self.store.touch(list(self._live), time.time())
            except Exception as exc:
                logger.warning("event log heartbeat failed: %s: %s", type(exc).__name__, exc)

    @property
    def backlog(self) -> int:
        """Events queued or being written."""
        return len(self._queue) + self._writing

    async def aclose(self, timeout: float = 5.0) -> None:
        """Write what is queued (up to ``timeout``), stop the writer, close the store."""
        await self.flush(timeout)
        await self._stop(self._beat)
        self._beat = None
        await self.store.aclose()


def _dot_source(flow: Flow[Any]) -> str:
    from ..diagram import to_dot

    return to_dot(flow).source


def _arguments(text: str | None) -> Any:
    """A tool call's arguments as JSON data (as the text the LLM wrote, if not JSON)."""
    if not text or text == "{}":  # a tool without arguments: no decoder to run
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return text


def _latency(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The figures of :data:`LATENCY_KEYS` that ``metrics`` (a ``MetricsReport``) holds,
    rounded to the microsecond, in that order."""
    present = _LATENCY_ORDER.keys() & metrics.keys()  # most of the keys are not there
    if not present:
        return {}
    get = metrics.__getitem__
    return {k: round(float(v), 6) for k in sorted(present, key=_LATENCY_ORDER.__getitem__)
            if isinstance(v := get(k), _NUMBER)}


_NUMBER = (int, float)
_LATENCY_ORDER = {key: i for i, key in enumerate(LATENCY_KEYS)}


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _plain(value: Any) -> Any:
    """``value`` as JSON data (anything else as its text)."""
    return json.loads(json.dumps(value, default=str))
