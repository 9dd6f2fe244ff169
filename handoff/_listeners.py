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

_ONE_ARGUMENT = inspect.Signature(
    [inspect.Parameter("event", inspect.Parameter.POSITIONAL_ONLY)]
)


def listener(callback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``callback`` as a one-argument function with its signature preset."""

    def call(event: Any, /) -> Any:
        return callback(event)

    call.__signature__ = _ONE_ARGUMENT  # type: ignore[attr-defined]
    return call
