"""Bringing stored checkpoints to a flow's version through its migrations.

Two users: a worker resuming an old call migrates its checkpoint on load
(:func:`upgrade`), and ``handoff migrate`` migrates every checkpoint of a store
ahead of a rollout (:func:`handoff.persistence.store_migration.migrate_store`).

A migrated checkpoint is only accepted when it fits the flow completely: its state
and every state of its return stack exist, and its Context validates as it is (no
field dropped). Anything else is a :class:`~handoff.errors.MigrationError`,
and the stored checkpoint stays as it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..errors import MigrationError
from ..migrations import Document, chain, migrate
from ..redaction import Redactor
from .checkpoint import Checkpoint, Sealer

if TYPE_CHECKING:
    from ..flow import Flow


def document(checkpoint: Checkpoint, sealer: Sealer | None = None) -> Document:
    """The document migrations read: the checkpoint's JSON with the whole Context in
    ``"context"`` (its sensitive section unsealed and merged in)."""
    doc = json.loads(checkpoint.to_json())
    doc.pop("sensitive", None)
    doc.pop("migration_failure", None)
    doc["context"] = checkpoint.context_data(sealer)
    return doc


def from_document(flow: Flow[Any], doc: Document, original: Checkpoint,
                  sealer: Sealer | None = None) -> Checkpoint:
    """The checkpoint of ``flow``'s version that a migrated ``doc`` stands for.

    Raises :class:`MigrationError` unless the document fits the flow completely.
    """
    state = doc.get("state")
    if state not in flow.states:
        raise MigrationError(f"the migrated call is in state {state!r}, which flow "
                             f"{flow.name} v{flow.version} does not have")
    stack = doc.get("return_stack") or []
    missing = [s for s in stack if s not in flow.states]
    if missing:
        raise MigrationError(f"the migrated call would return to {missing[0]!r}, which flow "
                             f"{flow.name} v{flow.version} does not have")
    try:
        context = flow.context_type.model_validate(doc.get("context") or {})
    except ValidationError as exc:
        fields = sorted({str(e["loc"][0]) for e in exc.errors() if e.get("loc")})
        raise MigrationError(f"the migrated Context does not fit {flow.context_type.__name__}: "
                             f"field(s) {', '.join(fields) or '?'} invalid or missing") from None
    plain, secret = Redactor(context).context_dump()
    sensitive: dict[str, Any] | str = secret
    if secret and (sealer is not None):
        sensitive = sealer.seal(json.dumps(secret).encode())
    return replace(
        original,
        flow_version=flow.version,
        state=state,
        context=plain,
        sensitive=sensitive,
        return_stack=list(stack),
        log=list(doc.get("log") or []),
        history=list(doc.get("history") or []),
        migration_failure=None,
        encoded_log=None,  # the lists as migrated, not as encoded before
        encoded_history=None,
    )


@dataclass(frozen=True)
class Upgrade:
    """What bringing one checkpoint to the flow's version gave."""

    checkpoint: Checkpoint
    """The migrated checkpoint; the original when nothing ran or a step failed."""
    source_version: str
    steps: tuple[str, ...] = ()
    """Names of the migrations that ran (empty: none was declared for that version)."""
    error: MigrationError | None = None

    @property
    def migrated(self) -> bool:
        return bool(self.steps) and self.error is None


def upgrade(flow: Flow[Any], checkpoint: Checkpoint, sealer: Sealer | None = None) -> Upgrade:
    """``checkpoint`` brought to ``flow``'s version by its migrations, when it declares a
    chain from the checkpoint's version; never raises (a failure is in ``error``)."""
    source = checkpoint.flow_version
    if source == flow.version:
        return Upgrade(checkpoint, source)
    steps = chain(flow.migrations, source, flow.version)
    if not steps:
        return Upgrade(checkpoint, source)
    names = tuple(s.name for s in steps)
    try:
        doc = document(checkpoint, sealer)
    except Exception as exc:  # sealed and no Sealer, or a key it lacks: it names no value
        return Upgrade(checkpoint, source, names, MigrationError(
            f"the checkpoint cannot be opened for its migrations: {type(exc).__name__}: {exc}"))
    try:
        return Upgrade(from_document(flow, migrate(doc, steps), checkpoint, sealer), source,
                       names)
    except MigrationError as exc:
        return Upgrade(checkpoint, source, names, exc)
