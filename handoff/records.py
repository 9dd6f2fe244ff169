"""What a run remembers and tells: the records of moves taken and refused, and the
observer protocol through which telemetry and checkpoints hear of them.

A leaf module (only :mod:`handoff.errors` below it), so observers, persistence and
the run all read the same plain records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from .errors import RefusalKind

MovedBy = Literal["llm", "code", "failover"]
"""Who asked for a move: the LLM's tool call, code (``run.go``), or the failure policy."""

R_contra = TypeVar("R_contra", contravariant=True)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One transition taken: the entry of a run's log."""

    source: str
    target: str
    trigger: str
    arguments: dict[str, Any]
    at: float
    by: MovedBy
    result: Any = None
    """What a side trip's ``to=RETURN`` body returned, in its JSON form (None otherwise)."""
    turn: int = 0
    """How many caller turns the call had when the move was taken (``run.turns``): two
    moves with the same ``turn`` had no caller input between them, which is what the loop
    policy (:func:`handoff.semantics.loop_reason`) looks at."""
    dropped: tuple[str, ...] = ()
    """Frames of the return stack this move dropped, top first: the task a side trip
    interrupted, given up (``abandons=True``), or the frames above the one a
    ``back_to=[...]`` return chose."""


@dataclass(frozen=True, slots=True)
class Returned(Generic[T]):
    """A side trip came back: what the state that started it receives in ``on_return``
    (LiveKit's awaited ``AgentTask[T]`` result)."""

    state: str
    """The side trip's state that returned (``Verify``)."""
    trigger: str
    """The ``to=RETURN`` transition it took (``identity_confirmed``)."""
    value: T
    """The result, of the type the transition's body declares (None when it declares none)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """One transition not taken, and the reason the LLM (or code) was given."""

    state: str
    trigger: str
    reason: str
    kind: RefusalKind
    at: float


@dataclass(frozen=True, slots=True)
class Resumption:
    """How a call was picked up from its checkpoint (``run.resumption``; observers' ``on_resume``)."""

    call_id: str
    outcome: str
    """``resumed``, ``migrated`` (through the flow's migrations), ``fallback`` (something
    no longer fitted and was dropped) or ``migration_failed`` (in the fallback state)."""
    state: str
    checkpoint_state: str
    checkpoint_version: str
    flow_version: str
    migrations: tuple[str, ...] = ()
    """The migrations that ran (or were tried, when one failed)."""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "migrations": list(self.migrations)}


class FlowObserver(Protocol[R_contra]):
    """Receives the transitions and refusals of runs of a Flow.

    Two places to put one: ``flow.observers`` for **every run of this flow** (telemetry,
    the checkpoint writer, coverage: flow-wide by design), ``run.observers`` for that
    one call only (a test's watcher, the event log of one chat), so a watcher of one run
    never hears another run of the same flow moving at the same time. A run tells the
    flow's first, then its own (:func:`handoff.observers.tell`)::

        FlowTelemetry().install(flow)            # every call (appends to flow.observers)
        run.observers.append(MyWatcher())        # this call

    ``run`` is the :class:`~handoff.run.FlowRun` that moved. Called synchronously on
    the conversation path: do no blocking work here.
    An observer may also define ``on_transition_requested(run, trigger, by)``: it is
    called (if present) when a move is asked for, before it is checked, in the caller's
    context (the LLM's tool-call span), so telemetry can time a handoff and nest its span.
    A request is normally followed by one ``on_transition`` or one ``on_refusal``
    (not when the session closes with the handoff still under way). An observer may
    also define ``on_resume(run, resumption)``: called once when a call is resumed
    from its checkpoint (see :class:`Resumption`), and ``on_approval(run, record)``:
    called at each step of a ``confirm=`` question (:class:`~handoff.approval.ApprovalRecord`).
    """

    def on_transition(self, run: R_contra, record: TransitionRecord) -> None: ...

    def on_refusal(self, run: R_contra, refusal: Refusal) -> None: ...
