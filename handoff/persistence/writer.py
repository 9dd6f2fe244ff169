"""Checkpointer: takes checkpoints on the call's path, writes them off it.

On the conversation path it only captures a small checkpoint (microseconds: what changed
since the last capture, read at that moment; its new log entries and messages are scrubbed
and encoded by the writer, see :meth:`Checkpoint.settle`) and puts it in a pending map
keyed by call id: latest wins, so a call never has more than
one write waiting, and the map is bounded (``max_pending`` calls; beyond that the
oldest pending call's checkpoint is dropped and counted). A background writer (in a
thread of its own for a SQLite store, else a task on the call's loop: see
:mod:`handoff.background`) writes them to the store, waiting ``coalesce`` seconds (20 ms) after it
wakes so that a burst of changes becomes one write. A failed write (store outage)
is logged, counted in ``handoff_checkpoint_errors_total`` and retried with backoff,
unless a newer checkpoint of that call arrived meanwhile; the call never notices.

When checkpoints are taken, for a tracked run (never while a transition is under
way, when the Context may hold a half-made move):

- after every transition (the flow observer hook);
- when the agent goes back to listening (turn end), if anything changed: the turn's
  lines and any context change its tools made. Not when a line is added: a caller's line
  may hold a value that a tool of the same turn is about to store in a sensitive field
  (a card number read out), and LiveKit adds the agent's line of a turn with tool calls
  before the tools run; only once the value is in the field is it scrubbed.

Identical checkpoints are not written twice.

When the call is over (see ``forget_on``) its checkpoint is replaced by a tombstone
(:meth:`Checkpoint.tombstone`): nothing of the call is kept, and neither a late write
of it nor a new call on the same id can resume it. :meth:`Checkpointer.load` sees a
tombstone still waiting in this process's queue, so a new call started here at once
starts fresh; another process sees it once it is written (``coalesce`` plus one write).
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Histogram

from ..background import BackgroundWriter
from ..observers import attach
from ..telemetry.metrics import HandoffMetrics, default_metrics
from .checkpoint import DEFAULT_HISTORY_LIMIT, CaptureCache, Checkpoint, Sealer, capture_changed
from .store import CheckpointStore

if TYPE_CHECKING:
    from ..flow import Flow
    from ..records import Refusal, TransitionRecord
    from ..run import FlowRun

logger = logging.getLogger("handoff.persistence")

#: Close reasons after which a call is over and its checkpoint is deleted. On
#: ``error`` or ``job_shutdown`` (the worker is going away) it is kept for a resume.
ENDED_REASONS = frozenset({"participant_disconnected", "task_completed"})
"""Session close reasons that end a call. Not ``user_initiated``: LiveKit's job process
closes the session that way when the *worker* shuts down (drain timeout, deploy), which
is exactly when the checkpoint must stay. A call that reached a final state is forgotten
whatever the reason."""


class _Tracked:
    __slots__ = ("cache", "call_id", "earlier", "fingerprint", "seq")

    def __init__(self, call_id: str, seq: int, earlier: list[dict[str, str]]) -> None:
        self.call_id = call_id
        self.seq = seq
        self.earlier = earlier
        self.fingerprint: tuple[Any, ...] = ()
        self.cache = CaptureCache()


class Checkpointer(BackgroundWriter[Checkpoint]):
    """Checkpoints tracked runs into ``store`` from a background writer.

    Args:
        store: where checkpoints go.
        history_limit: how many recent user/assistant messages a checkpoint keeps.
        max_pending: most calls with a write waiting; beyond it the oldest is dropped.
        retry_delay: the first backoff after a failed write (seconds).
        max_retry_delay: the longest backoff after failed writes (seconds).
        sealer: encrypts the sensitive section of checkpoints.
        metrics: where write counts and errors go (default: the global registry).
        forget_on: session close reasons that mean the call is over, so its checkpoint
            is deleted (default :data:`ENDED_REASONS`); so is a call in a final state.
        coalesce: seconds the writer waits after waking, so the burst of a turn (the
            caller's line, tool calls, a handoff, the reply) is one write, not five. It
            widens the window a crash can lose by as much.
    """

    def __init__(
        self,
        store: CheckpointStore,
        *,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        max_pending: int = 10_000,
        retry_delay: float = 0.2,
        max_retry_delay: float = 5.0,
        sealer: Sealer | None = None,
        metrics: HandoffMetrics | None = None,
        forget_on: frozenset[str] = ENDED_REASONS,
        coalesce: float = 0.02,
    ) -> None:
        super().__init__("handoff.checkpoint_writer", coalesce=coalesce,
                         retry_delay=retry_delay, max_retry_delay=max_retry_delay,
                         threaded=store.any_thread)
        self.store = store
        self.forget_on = forget_on
        self.history_limit = history_limit
        self.max_pending = max_pending
        self.sealer = sealer
        self.metrics = metrics if metrics is not None else default_metrics()
        self._runs: weakref.WeakKeyDictionary[FlowRun[Any], _Tracked] = (
            weakref.WeakKeyDictionary()
        )
        self.taken = 0
        """Checkpoints taken (queued) since this Checkpointer was made."""
        self._pending: dict[str, Checkpoint] = {}
        self._writing: Checkpoint | None = None
        self._write_metrics: tuple[Counter, Histogram] | None = None

    # -- wiring ----------------------------------------------------------------------
    def install(self, flow: Flow[Any]) -> Checkpointer:
        """Checkpoint tracked runs of ``flow`` after each of their transitions."""
        if self not in flow.observers:
            flow.observers.append(self)
        return self

    def track(self, run: FlowRun[Any], call_id: str, *, resumed: Checkpoint | None = None,
              after_seq: int = 0) -> None:
        """Checkpoint ``run`` under ``call_id`` from now on (its session must be attached).

        ``resumed`` is the checkpoint the run resumes: its history stays in front of
        the new session's messages, and new checkpoints get higher seqs. ``after_seq``:
        new checkpoints get seqs above it (the tombstone of an earlier call on the id,
        whatever the clocks of the workers say).
        """
        if not run.attached:
            raise ValueError("track() needs a run attached to its session")
        attach(run, self)  # this run only, unless installed on its flow
        self._runs[run] = _Tracked(call_id, resumed.seq if resumed else after_seq,
                                   list(resumed.history) if resumed else [])
        # the turn's end (most state changes are not): told apart here, without another call
        run.listen("agent_state_changed",
                   lambda ev: ev.new_state == "listening" and self.checkpoint(run))
        run.listen("close", lambda ev: self._on_close(run, ev))
        self.checkpoint(run)

    # -- observer hooks (synchronous, on the call's path) -------------------------------
    def on_transition(self, run: FlowRun[Any], record: TransitionRecord) -> None:
        self.checkpoint(run)

    def on_refusal(self, run: FlowRun[Any], refusal: Refusal) -> None:
        """A refusal changes nothing (the run rolls back), so there is nothing to save."""

    def _on_close(self, run: FlowRun[Any], event: Any) -> None:
        tracked = self._runs.pop(run, None)
        if tracked is None:
            return
        reason = str(getattr(event.reason, "value", event.reason))
        if reason in self.forget_on or run.is_final():
            seq = max(tracked.seq + 1, time.time_ns() // 1000)
            self._enqueue(tracked.call_id, Checkpoint.tombstone(
                tracked.call_id, run.flow.name, run.flow.version, seq))

    async def load(self, call_id: str) -> Checkpoint | None:
        """The latest checkpoint of ``call_id``: a tombstone still queued here, else the
        store's (which raises on an outage, CheckpointFormatError on a malformed one)."""
        for queued in (self._pending.get(call_id), self._writing):
            if queued is not None and queued.call_id == call_id and queued.ended:
                return queued
        return await self.store.load(call_id)

    def checkpoint(self, run: FlowRun[Any]) -> bool:
        """Snapshot ``run`` now and queue the write. False if untracked or unchanged.

        Not while a transition is under way: its body may have changed the Context
        for a state the run is not in yet. The commit checkpoints (``on_transition``);
        a refused or interrupted move rolls the Context back, and the next message or
        turn end checkpoints again.
        """
        tracked = self._runs.get(run)
        if tracked is None or run.in_transition:
            return False
        try:
            # seqs grow within a call and stay above an older call's on the same id
            seq = max(tracked.seq + 1, time.time_ns() // 1000)
            cp = capture_changed(run, tracked.call_id, seq, history_limit=self.history_limit,
                                 sealer=self.sealer, earlier=tracked.earlier,
                                 cache=tracked.cache, defer=True)
        except Exception:
            logger.exception("could not capture a checkpoint of call %s", tracked.call_id)
            self.metrics.checkpoint_errors.labels(self.store.kind).inc()
            return False
        if cp is None:  # nothing it reads changed since the last capture
            return False
        fingerprint = cp.fingerprint()
        if fingerprint == tracked.fingerprint:
            return False
        tracked.fingerprint = fingerprint
        tracked.seq = cp.seq
        self.taken += 1
        self._enqueue(cp.call_id, cp)
        return True

    # -- the writer (BackgroundWriter) -------------------------------------------------
    def _enqueue(self, call_id: str, cp: Checkpoint) -> None:
        """Queue ``cp`` for ``call_id``, replacing any older one still waiting."""
        self._ready()  # no running loop: raise before changing anything
        pending = self._pending
        threaded = self.threaded
        with self._lock:
            oldest = (next(iter(pending)) if call_id not in pending
                      and len(pending) >= self.max_pending else None)
            if oldest is not None:
                del pending[oldest]
            pending.pop(call_id, None)
            pending[call_id] = cp
            kick = threaded and self._arm()
        if kick:
            self._schedule_kick()
        elif not threaded:
            self._signal()
        if oldest is not None:
            self.metrics.checkpoint_dropped.labels(self.store.kind).inc()
            logger.warning("checkpoint queue full: dropped a pending checkpoint of call %s", oldest)

    def _queued(self) -> bool:
        return bool(self._pending)

    def _take(self) -> Checkpoint:
        call_id = next(iter(self._pending))
        self._writing = cp = self._pending.pop(call_id)
        return cp

    async def _write(self, work: Checkpoint) -> None:
        await self.store.save(work.settle())  # scrubbed and encoded here, off the call's loop

    def _put_back(self, work: Checkpoint) -> None:
        self._pending.setdefault(work.call_id, work)  # unless a newer one came meanwhile

    def _failed(self, work: Checkpoint, exc: Exception, retry_in: float) -> None:
        self.metrics.checkpoint_errors.labels(self.store.kind).inc()
        what = "end" if work.ended else f"seq {work.seq}"
        logger.warning("checkpoint of call %s (%s) not written: %s: %s; retrying in %.1fs",
                       work.call_id, what, type(exc).__name__, exc, retry_in)
        self._put_back(work)

    def _settled(self) -> None:
        self._writing = None

    async def _written(self, work: Checkpoint, seconds: float) -> None:
        if self._write_metrics is None:  # looked up once, at the first write
            kind = self.store.kind
            self._write_metrics = (self.metrics.checkpoint_writes.labels(kind),
                                   self.metrics.checkpoint_write_seconds.labels(kind))
        writes, write_seconds = self._write_metrics
        writes.inc()
        write_seconds.observe(seconds)

    @property
    def backlog(self) -> int:
        """Checkpoints waiting to be written (one per call at most)."""
        return len(self._pending) + (1 if self._writing is not None else 0)

    async def aclose(self, timeout: float = 5.0) -> None:
        """Write what is queued (up to ``timeout``), stop the writer, close the store."""
        await self.flush(timeout)
        await self._stop()
        await self.store.aclose()
