"""Putting back the checkpoints a worker set aside because it could not open them.

A worker that cannot open a call's checkpoint (its pii section sealed with a key the
worker lacks, a format it does not read, corrupt) never overwrites it: it moves it
to ``<call id>#unopened-<seq>`` and the call goes on fresh (see :mod:`handoff.resume`).
Once the key is back in ``HANDOFF_SEAL_KEYS``, ``handoff migrate FLOW --recover``
runs :func:`recover_store`: each set-aside checkpoint that now opens is brought to
the flow's version (its migrations), re-sealed with the current key and put back
under its call id, so the call resumes where it was when it is dispatched again.

It goes back only where it cannot hide a live call: when the call id holds nothing
(the fresh call never wrote, or expired) or a tombstone (the fresh call ended).
Otherwise, and when it still does not open, it stays set aside, and the report says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointFormatError
from .checkpoint import Sealer
from .migrate import upgrade
from .store import CheckpointStore, set_aside_from

if TYPE_CHECKING:
    from ..flow import Flow


@dataclass
class RecoveryReport:
    """What :func:`recover_store` did (or, in a dry run, would do) with each set-aside key."""

    dry_run: bool
    recovered: dict[str, str] = field(default_factory=dict)
    """set-aside key → the call id it went back to."""
    kept: dict[str, str] = field(default_factory=dict)
    """set-aside key → why it stays set aside."""

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "recovered": self.recovered, "kept": self.kept}

    def lines(self) -> list[str]:
        verb = "would put back" if self.dry_run else "put back"
        out = [f"    {verb} {key} as call {call_id}"
               for key, call_id in sorted(self.recovered.items())]
        out += [f"    KEPT ASIDE {key}: {why}" for key, why in sorted(self.kept.items())]
        return out


async def recover_store(flow: Flow[Any], store: CheckpointStore, *, sealer: Sealer | None = None,
                        dry_run: bool = False) -> RecoveryReport:
    """Put back every set-aside checkpoint of ``flow`` in ``store`` that now opens."""
    report = RecoveryReport(dry_run)
    for key in await store.list_calls(aside=True):
        call_id = set_aside_from(key)
        assert call_id is not None
        why = await _recover(flow, store, key, call_id, sealer, dry_run)
        if why is None:
            report.recovered[key] = call_id
        else:
            report.kept[key] = why
    return report


async def _recover(flow: Flow[Any], store: CheckpointStore, key: str, call_id: str,
                   sealer: Sealer | None, dry_run: bool) -> str | None:
    """Put one set-aside checkpoint back; None when done, else why it stays aside."""
    try:
        checkpoint = await store.load(key)
    except CheckpointFormatError as exc:
        return f"still unreadable: {exc}"
    if checkpoint is None:
        return "expired meanwhile"
    if checkpoint.flow != flow.name:
        return f"a checkpoint of flow {checkpoint.flow!r}, not {flow.name!r}"
    try:
        opened = checkpoint.resealed(sealer)
    except Exception as exc:  # a SealError names the key id, never the data
        return f"still does not open: {exc}"
    upgraded = upgrade(flow, opened, sealer)
    if upgraded.error is not None:
        return f"cannot be migrated to v{flow.version}: {upgraded.error}"
    back = replace(upgraded.checkpoint, call_id=call_id)
    try:
        current = await store.load(call_id)
    except CheckpointFormatError:
        return f"call id {call_id!r} holds another checkpoint that cannot be opened"
    if current is not None and not current.ended:
        return f"call id {call_id!r} holds a live call's checkpoint (seq {current.seq})"
    if dry_run:
        return None
    if current is None:
        stored = await store.save(back)
    else:  # after the tombstone of the call that went on fresh
        stored = await store.replace(replace(back, seq=current.seq + 1), seq=current.seq)
    if not stored:
        return f"call id {call_id!r} was written meanwhile"
    await store.delete(key)
    return None
