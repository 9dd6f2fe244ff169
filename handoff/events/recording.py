"""Recording: the event log of the calls one program runs — a chat, a console, a demo, a test.

    async with Recording.configured() as recording:    # HANDOFF_EVENT_STORE, or nothing
        async with flow.session(llm=llm) as run:
            recording.track(run, "demo")               # its call id, e.g. "demo-1f3a9c2e"
            ...

A worker's job processes keep one :class:`~handoff.events.EventLog` each
(:mod:`handoff.worker`); a program that runs its own calls opens a Recording around them:
on exit it writes what is still queued (the ``call_ended`` of a session closed just
before) and closes the store. Without a store it records nothing, so callers need no
``if``. ``handoff chat --inspect`` and ``handoff run … --inspect`` record to
:func:`~handoff.events.stores.default_store_path` unless a store is configured; bare
``handoff inspect`` opens that same file, so a call can be replayed after its program ended.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .recorder import EventLog
from .store import EventStore
from .stores import describe, event_store_from_env

if TYPE_CHECKING:
    from ..run import FlowRun


def new_call_id(prefix: str) -> str:
    """A call id for a call that has none of its own: ``prefix`` and 8 random hex digits."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Recording:
    """Records the calls it tracks to ``store`` (nothing when ``store`` is None).

    Use ``async with``: on exit every queued event is written (up to ``timeout``
    seconds) and the store is closed.
    """

    def __init__(self, store: EventStore | None, *, timeout: float = 5.0) -> None:
        self.store = store
        self.timeout = timeout
        self.log = None if store is None else EventLog(store)

    @classmethod
    def configured(cls, environ: Mapping[str, str] | None = None) -> Recording:
        """Recording to the store the environment configures (``HANDOFF_EVENT_STORE``,
        else next to the checkpoints), or recording nothing."""
        return cls(event_store_from_env(environ))

    @property
    def where(self) -> str | None:
        """Where the events go (see :func:`describe`), or None when nothing is recorded."""
        return None if self.store is None else describe(self.store)

    def track(self, run: FlowRun[Any], prefix: str = "call") -> str | None:
        """Record ``run`` (attached to its session) from now on; returns its call id (the
        run's own, else a new one starting with ``prefix``), or None when not recording."""
        if self.log is None:
            return None
        call_id = run.call_id or new_call_id(prefix)
        self.log.track(run, call_id)
        return call_id

    async def __aenter__(self) -> Recording:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self.log is not None:
            await self.log.aclose(self.timeout)
