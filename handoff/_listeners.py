"""Cheap session listeners.

LiveKit's ``EventEmitter.emit`` calls ``inspect.signature`` on every listener at every
emit to decide how many arguments to pass: about 26 µs for a bound method, about 3 µs
for a function whose ``__signature__`` is already set (benchmarks/analysis.md). The
listeners handoff adds to every session are made with :func:`listener`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

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


class _Routed:
    """A listener for several events, each told apart by its ``type`` and given with
    ``target`` to that type's handler: one object and one call per event, not a listener
    that calls a method that compares the type."""

    __slots__ = ("handlers", "target")
    __signature__ = _ANY_ARGUMENTS

    def __init__(self, target: Any, handlers: Mapping[str, Callable[[Any, Any], Any]]) -> None:
        self.target, self.handlers = target, handlers

    def __call__(self, event: Any, /, *_: Any) -> Any:
        return self.handlers[event.type](self.target, event)


def routed(target: Any, handlers: Mapping[str, Callable[[Any, Any], Any]]
           ) -> Callable[[Any], Any]:
    """A listener for the events named in ``handlers``: ``handlers[event.type](target,
    event)``. Register it for each of those names (``session.on(name, it)``)."""
    return _Routed(target, handlers)
