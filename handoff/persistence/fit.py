"""What resuming a checkpoint under a flow does: the one decision resume, migrate and diff share.

:func:`plan_resume` is pure (no session, no store): the checkpoint through the flow's
migrations (:func:`~handoff.persistence.migrate.upgrade`), then the state it resumes in
(its own, or the fallback when a migration failed or the state is gone), the Context
fields that still fit and those dropped, and the return states kept.
:func:`handoff.resume.restore_run` resumes a call by it; ``handoff migrate --dry-run``
reports each stored call it says would lose something; ``handoff diff`` runs it on
representative checkpoints of the old version to judge each change by its effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .checkpoint import Checkpoint, Sealer
from .migrate import Upgrade, upgrade

if TYPE_CHECKING:
    from ..context import Context
    from ..flow import Flow


@dataclass(frozen=True)
class ResumePlan:
    """How a checkpoint resumes under a flow."""

    upgraded: Upgrade
    state: str
    """The state the call resumes in."""
    context: Context
    dropped: tuple[str, ...]
    """Context fields of the checkpoint that do not fit and are dropped."""
    stack: tuple[str, ...]
    lost_returns: tuple[str, ...]
    """Return states that no longer exist, dropped from the stack."""
    outcome: str
    """``resumed``, ``migrated``, ``fallback`` (something dropped) or ``migration_failed``."""

    @property
    def saved_state(self) -> str:
        """The state the checkpoint was in (after its migrations, when they ran)."""
        return self.upgraded.checkpoint.state

    @property
    def lost_state(self) -> bool:
        """The call does not resume where it was (it goes to the fallback state)."""
        return self.state != self.saved_state or self.upgraded.error is not None

    @property
    def loses(self) -> bool:
        """Resuming loses the call's state, a Context field or a return state."""
        return self.lost_state or bool(self.dropped) or bool(self.lost_returns)

    def describe(self) -> str:
        """What is lost, in words (empty when nothing is)."""
        parts = []
        if self.lost_state:
            parts.append(f"resumes in {self.state} instead of {self.saved_state}")
        if self.dropped:
            parts.append(f"loses field(s) {', '.join(sorted(self.dropped))}")
        if self.lost_returns:
            parts.append(f"loses return state(s) {', '.join(self.lost_returns)}")
        return "; ".join(parts)


def plan_resume(flow: Flow[Any], checkpoint: Checkpoint, sealer: Sealer | None = None, *,
                fallback: str | None = None, upgraded: Upgrade | None = None) -> ResumePlan:
    """How ``checkpoint`` resumes under ``flow`` (``fallback``: the state a call that
    cannot resume where it was goes to; default the flow's ``resume_fallback``).

    Raises when the checkpoint cannot be opened (sealed, and ``sealer`` lacks its key).
    """
    if upgraded is None:
        upgraded = upgrade(flow, checkpoint, sealer)
    saved = upgraded.checkpoint
    context, dropped = restore_context(flow, saved.context_data(sealer))
    target = fallback if fallback is not None else flow.resume_fallback
    state = saved.state
    outcome = "migrated" if upgraded.migrated else "resumed"
    if upgraded.error is not None:
        state, outcome = target, "migration_failed"
    elif state not in flow.states:
        state, outcome = target, "fallback"
    stack = tuple(s for s in saved.return_stack if s in flow.states)
    lost_returns = tuple(s for s in saved.return_stack if s not in flow.states)
    if (dropped or lost_returns) and outcome == "resumed":
        outcome = "fallback"
    return ResumePlan(upgraded, state, context, tuple(dropped), stack, lost_returns, outcome)


def restore_context(flow: Flow[Any], data: dict[str, Any]) -> tuple[Any, list[str]]:
    """The flow's Context from saved data, dropping fields that no longer fit."""
    model = flow.context_type
    known = {k: v for k, v in data.items() if k in model.model_fields}
    dropped = [k for k in data if k not in model.model_fields]
    while True:
        try:
            return model.model_validate(known), dropped
        except ValidationError as exc:
            bad = {str(err["loc"][0]) for err in exc.errors() if err.get("loc")}
            bad &= set(known)
            if not bad:
                raise
            for name in bad:
                known.pop(name)
            dropped.extend(bad)
