"""The span thread: ``handoff.transition`` spans are made and ended off the call's event loop.

Making an OpenTelemetry span is most of what telemetry costs a handoff turn (the SDK
checks every attribute value, samples, builds the span and hands it to each span
processor: ~2 000 bytecodes, ~100 µs, per move). :class:`FlowTelemetry
<handoff.telemetry.FlowTelemetry>` works out on the loop what the span says (its
attributes, parent, start and end times: all read from the run as it is at that moment)
and hands the rest to one daemon thread per process, which makes the span in a copy of
the loop's :mod:`contextvars` (LiveKit's job context, so the conversation id and LiveKit's
PII filter see what they would on the loop), on the tracer provider LiveKit had when the
move happened. Spans are made in the order they were handed over.

A span therefore reaches the span processors (and an in-memory exporter) a moment after
the move, not during it: :func:`flush_spans` waits for those handed over so far.
:func:`handoff.telemetry.otel.flush` (the end of a call) and
:func:`~handoff.telemetry.otel.shutdown` (process exit) do so before they flush the
provider.
"""

from __future__ import annotations

import contextvars
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("handoff.telemetry")

_Job = tuple[contextvars.Context, Callable[..., None], tuple[Any, ...]]


class SpanThread:
    """One daemon thread that runs span-making jobs, in order, each in the context it was
    handed over in. Started on the first job (again in a forked child)."""

    def __init__(self, name: str = "handoff-spans") -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[_Job | threading.Event] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def thread(self) -> threading.Thread | None:
        """The span thread, once a job started it."""
        return self._thread

    def submit(self, job: Callable[..., None], *args: Any) -> None:
        """Run ``job(*args)`` on the span thread, in a copy of the current context."""
        self._jobs.put((contextvars.copy_context(), job, args))
        if self._thread is None:
            self._start()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every job handed over so far has run; False after ``timeout`` seconds."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._jobs.put(done)
        return done.wait(timeout)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
                self._thread.start()

    def _main(self) -> None:
        jobs = self._jobs
        while True:
            item = jobs.get()
            if isinstance(item, threading.Event):
                item.set()
                continue
            context, job, args = item
            try:
                context.run(job, *args)
            except Exception:
                logger.exception("a handoff.transition span could not be made")

    def _forked(self) -> None:
        """In a forked child: the parent's thread is not there; start afresh on demand."""
        self._jobs = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread = None


SPANS = SpanThread()
"""The process's span thread."""
os.register_at_fork(after_in_child=SPANS._forked)


def flush_spans(timeout: float | None = 1.0) -> bool:
    """Wait until the spans of every move so far are made and ended (handed to the span
    processors, so an in-memory exporter has them); False after ``timeout`` seconds."""
    return SPANS.flush(timeout)
