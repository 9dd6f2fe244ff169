"""Recording a refusal: a move not taken goes on the run's record (``run.refusals``),
to its observers and, when it is an error, to the failure count (a refusal is not a
failure otherwise: DESIGN invariant 6).

Its reason is what the LLM (or code) is told, so it is scrubbed of every value a
sensitive Context field ever held: it may quote an exception or a guard's text.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import RefusalKind, TransitionRefused
from .observers import tell
from .records import Refusal

if TYPE_CHECKING:
    from .run import FlowRun  # type-only: a refusal is recorded on the run it belongs to


def record_refusal(run: FlowRun[Any], trigger: str, kind: RefusalKind, reason: str) -> Refusal:
    """Record and report a refusal of ``trigger`` in the run's current state."""
    refusal = Refusal(run.state, trigger, run._scrubbed(reason), kind, time.time())
    run.refusals.append(refusal)
    tell(run, "on_refusal", refusal)
    if kind == "error":
        run.failures.note(refusal.reason)
    return refusal


def refuse(run: FlowRun[Any], trigger: str, kind: RefusalKind, reason: str) -> NoReturn:
    """Record the refusal and raise it to whoever asked for the move."""
    refusal = record_refusal(run, trigger, kind, reason)
    raise TransitionRefused(refusal.reason, trigger=trigger, kind=kind)
