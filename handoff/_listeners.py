"""Cheap session listeners.

LiveKit's ``EventEmitter.emit`` calls ``inspect.signature`` on every listener at every
emit to decide how many arguments to pass: about 26 µs for a bound method, about 3 µs
for a function whose ``__signature__`` is already set (benchmarks/analysis.md). The
listeners handoff adds to every session are made with :func:`listener`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger("handoff")

_ANY_ARGUMENTS = inspect.Signature(
    [inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL)]
)
"""``(*args)``: ``emit`` then passes what it was given as it is, without counting the
listener's positional parameters first (~0.3 µs less per event)."""


class _Listener:
    """A one-argument callable with a class-level signature: no per-object ``__dict__``,
    so a listener costs about 100 bytes where a closure with its own ``__signature__``
    cost about 500 (handoff adds several to every session)."""

    __slots__ = ("callback",)
    __signature__ = _ANY_ARGUMENTS

    def __init__(self, callback: Callable[[Any], Any]) -> None:
        self.callback = callback

    def __call__(self, event: Any, /, *_: Any) -> Any:
        return self.callback(event)  # a session's events come one at a time


def listener(callback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``callback`` as a callable with its signature preset, told the event only."""
    return _Listener(callback)


class Hub:
    """The one listener handoff hangs on a session for each event name it follows: the
    run's own handlers (``handlers[event.type](target, event)``) and then, in the order
    they came, the callbacks the call's writers and telemetry added (:meth:`add`).

    LiveKit's ``emit`` inspects each listener's signature at every event (~170 bytecodes a
    listener), so the run, the checkpointer, the event log and telemetry share this one
    instead of holding four. As LiveKit does for its listeners, a callback that raises is
    logged and the others still run."""

    __slots__ = ("emitter", "extra", "handlers", "target")
    __signature__ = _ANY_ARGUMENTS

    def __init__(self, emitter: Any, target: Any,
                 handlers: Mapping[str, Callable[[Any, Any], Any]]) -> None:
        self.emitter, self.target, self.handlers = emitter, target, handlers
        self.extra: dict[str, list[Callable[[Any], Any]]] | None = None  # made by add()
        for name in handlers:
            emitter.on(name, self)

    def add(self, name: str, callback: Callable[[Any], Any]) -> None:
        """Tell ``callback(event)`` each event ``name`` of the session from now on."""
        if self.extra is None:
            self.extra = {}
        callbacks = self.extra.get(name)
        if callbacks is None:
            callbacks = self.extra[name] = []
            if name not in self.handlers:
                self.emitter.on(name, self)
        callbacks.append(callback)

    def __call__(self, event: Any, /, *_: Any) -> None:
        kind = event.type
        handler = self.handlers.get(kind)
        if handler is not None:
            try:
                handler(self.target, event)
            except TypeError:  # as LiveKit's emit: a wrong call is a bug, not an event's
                raise
            except Exception:
                logger.exception("failed to handle event %s", kind)
        if self.extra is not None and (callbacks := self.extra.get(kind)):
            for callback in callbacks:
                try:
                    callback(event)
                except TypeError:
                    raise
                except Exception:
                    logger.exception("failed to handle event %s", kind)
