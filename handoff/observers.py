"""Telling a run's observers: the flow-wide ones (``flow.observers``: every run of the
flow, e.g. telemetry, checkpoints, coverage) and the run's own (``run.observers``: a
watcher of this one call), in that order.

An observer of one call attaches to the run, so it never hears another run of the same
flow: :func:`attach` does that unless the observer is flow-wide already. An observer
has any of the hooks of :class:`~handoff.records.FlowObserver`; one that raises is
logged and never stops the call.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

logger = logging.getLogger("handoff")


class _Observed(Protocol):
    @property
    def observers(self) -> Sequence[Any]: ...


class ObservedRun(Protocol):
    """What :func:`tell` reads of a run (a :class:`~handoff.run.FlowRun`)."""

    @property
    def flow(self) -> _Observed: ...

    @property
    def observers(self) -> list[Any]: ...


def attach(run: ObservedRun, observer: Any) -> None:
    """Make ``observer`` hear ``run`` (only it), unless it hears every run of the flow."""
    if observer not in run.flow.observers and observer not in run.observers:
        run.observers.append(observer)


def detach(run: ObservedRun, observer: Any) -> None:
    """Stop ``observer`` hearing ``run`` (a flow-wide one is left as it is)."""
    if observer in run.observers:
        run.observers.remove(observer)


def tell(run: ObservedRun, hook: str, *args: Any) -> None:
    """Call ``hook(run, *args)`` on every observer of ``run`` that has it (each hook is
    optional); an observer that raises is logged and the others are still told. One in
    both lists is told once."""
    shared, own = run.flow.observers, run.observers
    for observer in (*shared, *(o for o in own if o not in shared)) if own else shared:
        method = getattr(observer, hook, None)
        if method is None:
            continue
        try:
            method(run, *args)
        except Exception:
            logger.exception("flow observer %r failed in %s", observer, hook)
