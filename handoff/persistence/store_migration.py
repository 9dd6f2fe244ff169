"""``handoff migrate``: every stored checkpoint of a flow brought to its version, and the truth
about the calls that would lose something.

:func:`migrate_store` walks a store one call at a time. A checkpoint of an older version
that a chain of migrations reads is migrated (replaced only if no worker wrote the call
meanwhile); one whose migration fails is kept, marked with the reason. Every other
checkpoint of an older version is judged by what resuming it would do
(:func:`~handoff.persistence.fit.plan_resume`, the decision the worker makes): a call
that would resume elsewhere than where it was, or lose a Context field or a return
state, is listed by id with what it loses, and ``handoff migrate`` exits 1 unless
``--allow-loss``. Sealed checkpoints are opened with the Sealer given (the worker's keys)
and re-sealed with its current key.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointFormatError
from .checkpoint import Checkpoint, Sealer
from .fit import plan_resume
from .migrate import upgrade
from .store import CheckpointStore

if TYPE_CHECKING:
    from ..flow import Flow


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
    """Calls of a version no migration reads that resume as they are, losing nothing."""
    losing: dict[str, str] = field(default_factory=dict)
    """call id → what resuming it loses (its state, fields, return states): calls of a
    version no migration reads that no longer fit, and those whose migration fails."""
    skipped: int = 0
    """Calls that changed while being migrated: left for the worker to migrate on load."""


@dataclass
class StoreReport:
    flow: str
    version: str
    dry_run: bool
    current: int = 0
    resealed: int = 0
    """Checkpoints of the current version sealed with an older key, sealed again with the
    current one."""
    other_flows: int = 0
    unreadable: dict[str, str] = field(default_factory=dict)
    versions: dict[str, VersionReport] = field(default_factory=dict)
    set_aside: list[str] = field(default_factory=list)
    """Keys of checkpoints workers set aside because they could not open them."""
    recovery: Any = None
    """The :class:`~handoff.persistence.recover.RecoveryReport` of ``--recover``, if run."""

    @property
    def losing(self) -> int:
        """Calls that would lose their state, a Context field or a return state."""
        return sum(len(v.losing) for v in self.versions.values())

    @property
    def failed(self) -> int:
        """Calls that failed to migrate, and set-aside ones ``--recover`` could not put back."""
        kept = len(self.recovery.kept) if self.recovery is not None else 0
        return sum(len(v.failed) for v in self.versions.values()) + kept

    def to_dict(self) -> dict[str, Any]:
        return {
            "flow": self.flow, "version": self.version, "dry_run": self.dry_run,
            "current": self.current, "resealed": self.resealed,
            "other_flows": self.other_flows,
            "unreadable": self.unreadable, "failed": self.failed, "losing": self.losing,
            "set_aside": self.set_aside,
            "recovery": None if self.recovery is None else self.recovery.to_dict(),
            "versions": {
                v.version: {
                    "calls": v.calls,
                    "moves": [{"from": a, "to": b, "calls": n}
                              for (a, b), n in sorted(v.moves.items())],
                    "failed": v.failed, "no_migration": v.no_migration, "skipped": v.skipped,
                    "losing": v.losing,
                } for v in self.versions.values()
            },
        }

    def text(self) -> str:
        """The report as lines for a terminal."""
        verb = "would move" if self.dry_run else "moved"
        lines = [f"flow {self.flow} v{self.version}"
                 f"{' (dry run: nothing written)' if self.dry_run else ''}",
                 f"  v{self.version} (current): {self.current} call(s), nothing to do"
                 + (f" but re-seal {self.resealed} with the current key" if self.resealed
                    else "")]
        for v in sorted(self.versions.values(), key=lambda r: r.version):
            lines.append(f"  v{v.version}: {v.calls} call(s)")
            for (before, after), n in sorted(v.moves.items()):
                where = f"{before} (same state)" if before == after else f"{before} → {after}"
                lines.append(f"    {verb} {n} call(s): {where}")
            if v.no_migration:
                lines.append(f"    {v.no_migration} call(s) of a version no migration reads: "
                             "they still fit and resume as they are")
            if v.skipped:
                lines.append(f"    {v.skipped} call(s) changed meanwhile: left for the worker "
                             "to migrate on load")
            for call_id, why in sorted(v.failed.items()):
                kept = "kept" if self.dry_run else "kept and marked"
                lines.append(f"    FAILED {call_id}: {why} ({kept})")
            for call_id, what in sorted(v.losing.items()):
                lines.append(f"    WOULD LOSE {call_id}: {what}")
        if self.other_flows:
            lines.append(f"  {self.other_flows} checkpoint(s) of other flows left alone")
        for call_id, why in sorted(self.unreadable.items()):
            lines.append(f"  UNREADABLE {call_id}: {why}")
        if self.losing:
            lines.append(f"  {self.losing} call(s) would lose their state or a field when they "
                         "resume: declare a Migration from their version (or pass --allow-loss "
                         "to accept it)")
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
            if await _reseal(store, checkpoint, sealer, dry_run):
                report.resealed += 1
            continue
        version = report.versions.setdefault(checkpoint.flow_version,
                                             VersionReport(checkpoint.flow_version))
        version.calls += 1
        result = upgrade(flow, checkpoint, sealer)
        try:
            plan = plan_resume(flow, checkpoint, sealer, upgraded=result)
        except Exception as exc:  # sealed with a key the Sealer lacks: it names no value
            report.unreadable[call_id] = f"cannot be opened: {type(exc).__name__}: {exc}"
            continue
        if plan.loses:
            version.losing[call_id] = plan.describe()
        if not result.steps:
            version.no_migration += not plan.loses
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


async def _reseal(store: CheckpointStore, checkpoint: Checkpoint, sealer: Sealer | None,
                  dry_run: bool) -> bool:
    """Seal ``checkpoint``'s section again with the sealer's current key when an older key
    sealed it (compare-and-set: a worker writing the call meanwhile wins). True if it
    was (or, in a dry run, would be)."""
    current = getattr(sealer, "current", None)
    token = checkpoint.sensitive
    if sealer is None or current is None or not isinstance(token, str):
        return False
    if token.split(".")[1:2] == [current]:
        return False
    try:
        fresh = checkpoint.resealed(sealer)
    except Exception:  # a key it lacks: a worker sets it aside when it meets it
        return False
    return dry_run or await store.replace(fresh, seq=checkpoint.seq)
