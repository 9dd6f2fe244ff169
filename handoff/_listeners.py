"""Cheap session listeners.

LiveKit's ``EventEmitter.emit`` calls ``inspect.signature`` on every listener at every
emit to decide how many arguments to pass: about 26 µs for a bound method, about 3 µs
for a function whose ``__signature__`` is already set (benchmarks/analysis.md). The
listeners handoff adds to every session are made with :func:`listener`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
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
