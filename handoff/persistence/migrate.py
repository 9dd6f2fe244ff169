"""Bringing stored checkpoints to a flow's version through its migrations.

Two users: a worker resuming an old call migrates its checkpoint on load
(:func:`upgrade`), and ``handoff migrate`` migrates every checkpoint of a store
ahead of a rollout (:func:`migrate_store`).

A migrated checkpoint is only accepted when it fits the flow completely: its state
and every state of its return stack exist, and its Context validates as it is (no
field dropped). Anything else is a :class:`~handoff.errors.MigrationError`,
and the stored checkpoint stays as it was.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..errors import CheckpointFormatError, MigrationError
from ..migrations import Document, chain, migrate
from ..redaction import Redactor
from .checkpoint import Checkpoint, Sealer
from .store import CheckpointStore

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


# -- a whole store ------------------------------------------------------------------------
@dataclass
class VersionReport:
    """What migrating the checkpoints of one stored version does (or would do)."""

    version: str
    calls: int = 0
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(state before, state after) → calls."""
    failed: dict[str, str] = field(default_factory=dict)
    """call id → why it cannot be migrated (kept, and marked unless dry run)."""
    no_migration: int = 0
    """Calls of a version no migration reads: they resume as they are."""
    skipped: int = 0
    """Calls that changed while being migrated: left for the worker to migrate on load."""


@dataclass
class StoreReport:
    flow: str
    version: str
    dry_run: bool
    current: int = 0
    other_flows: int = 0
    unreadable: dict[str, str] = field(default_factory=dict)
    versions: dict[str, VersionReport] = field(default_factory=dict)
    set_aside: list[str] = field(default_factory=list)
    """Keys of checkpoints workers set aside because they could not open them."""
    recovery: Any = None
    """The :class:`~handoff.persistence.recover.RecoveryReport` of ``--recover``, if run."""

    @property
    def failed(self) -> int:
        """Calls that failed to migrate, and set-aside ones ``--recover`` could not put back."""
        kept = len(self.recovery.kept) if self.recovery is not None else 0
        return sum(len(v.failed) for v in self.versions.values()) + kept

    def to_dict(self) -> dict[str, Any]:
        return {
            "flow": self.flow, "version": self.version, "dry_run": self.dry_run,
            "current": self.current, "other_flows": self.other_flows,
            "unreadable": self.unreadable, "failed": self.failed,
            "set_aside": self.set_aside,
            "recovery": None if self.recovery is None else self.recovery.to_dict(),
            "versions": {
                v.version: {
                    "calls": v.calls,
                    "moves": [{"from": a, "to": b, "calls": n}
                              for (a, b), n in sorted(v.moves.items())],
                    "failed": v.failed, "no_migration": v.no_migration, "skipped": v.skipped,
                } for v in self.versions.values()
            },
        }

    def text(self) -> str:
        """The report as lines for a terminal."""
        verb = "would move" if self.dry_run else "moved"
        lines = [f"flow {self.flow} v{self.version}"
                 f"{' (dry run: nothing written)' if self.dry_run else ''}",
                 f"  v{self.version} (current): {self.current} call(s), nothing to do"]
        for v in sorted(self.versions.values(), key=lambda r: r.version):
            lines.append(f"  v{v.version}: {v.calls} call(s)")
            for (before, after), n in sorted(v.moves.items()):
                where = f"{before} (same state)" if before == after else f"{before} → {after}"
                lines.append(f"    {verb} {n} call(s): {where}")
            if v.no_migration:
                lines.append(f"    {v.no_migration} call(s) of a version no migration reads: "
                             "they resume as they are where they still fit, else in the "
                             "fallback state")
            if v.skipped:
                lines.append(f"    {v.skipped} call(s) changed meanwhile: left for the worker "
                             "to migrate on load")
            for call_id, why in sorted(v.failed.items()):
                kept = "kept" if self.dry_run else "kept and marked"
                lines.append(f"    FAILED {call_id}: {why} ({kept})")
        if self.other_flows:
            lines.append(f"  {self.other_flows} checkpoint(s) of other flows left alone")
        for call_id, why in sorted(self.unreadable.items()):
            lines.append(f"  UNREADABLE {call_id}: {why}")
        if self.recovery is not None:
            lines.append("  set aside (could not be opened by a worker):")
            lines += self.recovery.lines() or ["    none"]
        elif self.set_aside:
            lines.append(f"  {len(self.set_aside)} checkpoint(s) set aside by workers that could "
                         "not open them (" + ", ".join(self.set_aside[:3])
                         + (", …" if len(self.set_aside) > 3 else "")
                         + "): add --recover once their key is back")
        return "\n".join(lines) + "\n"


async def migrate_store(flow: Flow[Any], store: CheckpointStore, *, dry_run: bool = False,
                        sealer: Sealer | None = None) -> StoreReport:
    """Migrate every checkpoint of ``flow`` in ``store`` to its version, one call at a time.

    Each call is replaced only if it is still the checkpoint that was read (same
    ``seq``), so a worker writing the call meanwhile wins and nothing is lost. A
    checkpoint that cannot be migrated is kept as it is, with a ``migration_failure``
    mark saying why. With ``dry_run`` nothing is written.
    """
    report = StoreReport(flow.name, flow.version, dry_run)
    report.set_aside = await store.list_calls(aside=True)
    for call_id in await store.list_calls():
        try:
            checkpoint = await store.load(call_id)
        except CheckpointFormatError as exc:
            report.unreadable[call_id] = str(exc)
            continue
        if checkpoint is None or checkpoint.ended:  # a tombstone: the call is over
            continue
        if checkpoint.flow != flow.name:
            report.other_flows += 1
            continue
        if checkpoint.flow_version == flow.version:
            report.current += 1
            continue
        version = report.versions.setdefault(checkpoint.flow_version,
                                             VersionReport(checkpoint.flow_version))
        version.calls += 1
        result = upgrade(flow, checkpoint, sealer)
        if not result.steps:
            version.no_migration += 1
            continue
        if result.error is not None:
            version.failed[call_id] = str(result.error)
            if not dry_run:
                marked = replace(checkpoint, migration_failure={
                    "to": flow.version, "error": str(result.error), "at": time.time()})
                await store.replace(marked, seq=checkpoint.seq)
            continue
        if not dry_run and not await store.replace(result.checkpoint, seq=checkpoint.seq):
            version.skipped += 1
            continue
        version.moves[(checkpoint.state, result.checkpoint.state)] += 1
    return report
