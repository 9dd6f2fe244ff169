"""Flow versions and migrations: the fingerprint, the chain checked at build, applying it."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from handoff import Flow, FlowDefinitionError, Migration, MigrationError, migration
from handoff.migrations import chain, migrate
from handoff.persistence import Checkpoint, MemoryStore
from handoff.persistence.migrate import document, upgrade
from handoff.persistence.store_migration import migrate_store

from .flowgen import TIERS, Ctx, make_flow, make_state, make_transition
from .versioned import callcenter_v1 as v1
from .versioned import callcenter_v2 as v2


def three_states(**overrides: Any) -> Flow[Any]:
    options: dict[str, Any] = dict(initial="A", final=["C"])
    options.update(overrides)
    return make_flow({"A": [("ab", "B")], "B": [("bc", "C")], "C": []}, **options)


# -- versions --------------------------------------------------------------------------
def test_derived_version_is_stable_and_ignores_what_does_not_touch_a_checkpoint() -> None:
    base = three_states()
    assert len(base.version) == 12 and base.version_derived
    assert three_states().version == base.version
    # a new prompt, tier or docstring keeps the version
    restyled = Flow("generated", context=Ctx, initial="A", final=["C"], tiers=TIERS, states=[
        make_state("A", [make_transition("ab", "B", doc="Go on to B now.")], tier="smart",
                   doc="Another docstring.", extra={"instructions": "Be terse."}),
        make_state("B", [make_transition("bc", "C")]), make_state("C")])
    assert restyled.version == base.version


def test_derived_version_changes_with_states_table_and_context() -> None:
    base = three_states().version
    renamed = make_flow({"A": [("ab", "B2")], "B2": [("bc", "C")], "C": []}, initial="A",
                        final=["C"])
    retargeted = make_flow({"A": [("ab", "C")], "B": [("bc", "C")], "C": []}, initial="A",
                           final=["C"])

    class Wider(Ctx):
        verified: bool | None = False  # type: ignore[assignment]

    assert len({base, renamed.version, retargeted.version, three_states(context=Wider).version}) == 4


def test_explicit_version_wins_and_is_in_every_checkpoint() -> None:
    assert v1.flow.version == "1" and not v1.flow.version_derived
    with v1.flow.new_run() as run:
        from handoff.persistence import capture

        assert capture(run, "c", 1).to_dict()["flow"] == {"name": "callcenter", "version": "1"}


# -- the chain, checked when the Flow is built ---------------------------------------------
def findings_of(**overrides: Any) -> list[Any]:
    with pytest.raises(FlowDefinitionError) as caught:
        v2.make_flow(**overrides)
    return caught.value.findings


def test_a_gap_in_the_chain_fails_with_the_migration_to_add() -> None:
    (finding,) = findings_of(version="3", migrations=[
        Migration("1", "2", states={"Greeter": "Triage", "Billing": "Payments"})])
    assert finding.code == "migration-gap"
    assert "calls saved by version '1' reach version '2'" in finding.message
    assert finding.hint == "add a migration from '2' to '3', or set 1→2's target to '3'"


def test_a_migration_to_a_state_that_does_not_exist_fails_naming_the_states() -> None:
    (finding,) = findings_of(migrations=[Migration("1", "2", states={"Billing": "Paymnts"})])
    assert finding.code == "migration-unknown-state" and finding.state == "Paymnts"
    assert "moves calls in 'Billing' to 'Paymnts'" in finding.message
    assert finding.hint == ("move them to one of the flow's states (Escalation, Payments, "
                            "Triage, Wrapup)")


def test_a_state_is_checked_at_the_end_of_the_chain() -> None:
    steps = [Migration("0", "1", states={"Start": "Greeter"}),  # Greeter is gone in v2...
             Migration("1", "2", states={"Billing": "Payments"})]
    (finding,) = findings_of(migrations=steps)
    assert finding.code == "migration-unknown-state" and finding.state == "Greeter"
    assert "at the end of the chain" in finding.message
    # ...unless the next step moves it on
    ok = [steps[0], Migration("1", "2", states={"Greeter": "Triage", "Billing": "Payments"})]
    assert v2.make_flow(migrations=ok).migrations == ok


def test_other_chain_mistakes_each_name_their_fix() -> None:
    def plain(doc: dict[str, Any]) -> dict[str, Any]:
        return doc

    found = findings_of(migrations=[
        plain,
        Migration("1", "2"), Migration("1", "2", states={"Billing": "Payments"}),
        Migration("2", "2"),
        Migration("0", "1", fields={"x": "y"}),
        Migration("a", "b"), Migration("b", "a"),
        Migration("z", "2", fields={"acount_id": "acount"}, values={"limit": int}),
    ])
    codes = {f.code: f for f in found}
    assert set(codes) == {"not-a-migration", "duplicate-migration", "migration-from-current",
                          "migration-loop", "migration-unknown-field"}
    assert "decorate the function with @migration(FROM_VERSION, TO_VERSION)" in (
        codes["not-a-migration"].hint)
    assert "keep one migration per version" in codes["duplicate-migration"].hint
    fields = [f for f in found if f.code == "migration-unknown-field"]
    assert [f.message for f in fields] == [
        "migration z→2 renames field 'acount_id' to 'acount', which the Context does not have",
        "migration z→2 converts field 'limit', which the Context does not have"]
    assert all("account, caller_name, pin, refund_limit, refund_ticket, verified" in f.hint
               for f in fields)
    (loop,) = [f for f in found if f.code == "migration-loop"]
    assert "go round in a loop (a → b → a)" in loop.message


def test_a_derived_version_is_named_in_the_gap_fix() -> None:
    with pytest.raises(FlowDefinitionError) as caught:
        Flow("generated", context=Ctx, initial="A", final=["C"], tiers=TIERS,
             states=[make_state("A", [make_transition("ab", "C")]), make_state("C")],
             migrations=[Migration("1", "2")])
    (finding,) = caught.value.findings
    assert "give Flow an explicit version=" in finding.hint


# -- applying migrations -------------------------------------------------------------------
def v1_document(state: str = "Billing", **context: Any) -> dict[str, Any]:
    ctx = v1.Call(caller_name="Dana", account_id="4411", verified=True, pin="1234", **context)
    with v1.flow.new_run(ctx) as run:
        run.restore(state)
        from handoff.persistence import capture

        return document(capture(run, "call-1", 7))


def test_one_migration_moves_states_renames_and_converts_fields() -> None:
    doc = v1_document(refund_limit=45.5)
    out = migrate(doc, chain(v2.flow.migrations, "1", "2") or [])
    assert out["flow"]["version"] == "2" and out["state"] == "Payments"
    assert out["context"] == {"caller_name": "Dana", "account": "4411", "verified": True,
                              "refund_limit": 4550, "refund_ticket": None, "pin": "1234"}
    assert doc["state"] == "Billing" and doc["context"]["account_id"] == "4411"  # a copy


def test_a_chain_runs_every_step_and_a_split_lets_the_function_choose() -> None:
    @migration("2", "3", states={"Payments": ("Refunds", "Charges")})
    def split_payments(doc: dict[str, Any]) -> None:
        if doc["state"] == "Payments":
            doc["state"] = "Refunds" if doc["context"]["refund_limit"] > 5000 else "Charges"

    steps = [v2.V1_TO_V2, split_payments]
    assert chain(steps, "1", "3") == steps and chain(steps, "2", "3") == [split_payments]
    assert chain(steps, "0", "3") is None
    assert migrate(v1_document(), steps)["state"] == "Refunds"
    assert migrate(v1_document(refund_limit=10.0), steps)["state"] == "Charges"
    assert migrate(v1_document("Wrapup"), steps)["state"] == "Wrapup"

    @migration("2", "3", states={"Payments": ("Refunds", "Charges")})
    def forgets_to_choose(doc: dict[str, Any]) -> None:
        pass

    with pytest.raises(MigrationError, match="declares 'Refunds' or 'Charges'"):
        migrate(v1_document(), [v2.V1_TO_V2, forgets_to_choose])


def test_a_raising_migration_names_where_it_raised_and_changes_nothing() -> None:
    def explode(value: float) -> int:
        raise ValueError(f"secret {value}")

    steps = [Migration("1", "2", values={"refund_limit": explode})]
    doc = v1_document()
    before = copy.deepcopy(doc)
    with pytest.raises(MigrationError) as caught:
        migrate(doc, steps)
    assert doc == before
    assert str(caught.value).startswith("migration 1→2 (1→2) raised ValueError at "
                                        "test_versions.py:")
    assert "secret" not in str(caught.value)  # the exception's text may hold a value


async def test_upgrade_validates_the_result_against_the_flow() -> None:
    checkpoint = Checkpoint.from_json(json.dumps({**v1_document(), "format": 1}))
    done = upgrade(v2.flow, checkpoint)
    assert done.migrated and done.steps == ("1→2",)
    assert done.checkpoint.state == "Payments" and done.checkpoint.flow_version == "2"
    assert done.checkpoint.sensitive == {"pin": "1234"}  # pii kept apart, as a writer would
    assert "pin" not in done.checkpoint.context

    forgot_field = v2.make_flow(migrations=[Migration("1", "2", states={
        "Greeter": "Triage", "Billing": "Payments"}, values={"refund_limit": round})])
    failed = upgrade(forgot_field, checkpoint)
    assert failed.checkpoint is checkpoint and failed.error is not None
    assert "field(s) account_id invalid or missing" in str(failed.error)

    same = upgrade(v1.flow, checkpoint)
    assert same.checkpoint is checkpoint and not same.steps


async def test_migrate_store_in_memory_reports_moves_and_keeps_failures_marked() -> None:
    store = MemoryStore()
    for n, state in enumerate(["Greeter", "Billing", "Billing", "Wrapup"]):
        doc = v1_document(state)
        doc.update(call_id=f"c{n}", seq=10 + n, format=1)
        await store.save(Checkpoint.from_json(json.dumps(doc)))
    bad = v1_document("Billing", refund_limit=-1.0)
    bad.update(call_id="bad", seq=5, format=1)
    await store.save(Checkpoint.from_json(json.dumps(bad)))

    def cents(value: float) -> int:
        if value < 0:
            raise ValueError("negative limit")
        return round(value * 100)

    flow = v2.make_flow(migrations=[Migration(
        "1", "2", states={"Greeter": "Triage", "Billing": "Payments"},
        fields={"account_id": "account"}, values={"refund_limit": cents})])
    dry = await migrate_store(flow, store, dry_run=True)
    report = dry.versions["1"]
    assert report.calls == 5 and dict(report.moves) == {
        ("Greeter", "Triage"): 1, ("Billing", "Payments"): 2, ("Wrapup", "Wrapup"): 1}
    assert list(report.failed) == ["bad"]
    assert (await store.load("c1")).flow_version == "1"  # type: ignore[union-attr]

    applied = await migrate_store(flow, store)
    assert applied.versions["1"].moves == report.moves
    assert (await store.load("c1")).state == "Payments"  # type: ignore[union-attr]
    kept = await store.load("bad")
    assert kept is not None and kept.flow_version == "1" and kept.state == "Billing"
    assert kept.migration_failure is not None and kept.migration_failure["to"] == "2"
    assert "raised ValueError" in kept.migration_failure["error"]

    again = await migrate_store(flow, store)
    assert again.current == 4 and again.versions["1"].calls == 1


async def test_a_sealed_checkpoint_is_migrated_with_its_sealer_and_sealed_again() -> None:
    from .test_persistence import XorSealer

    sealer = XorSealer()
    with v1.flow.new_run(v1.Call(account_id="4411", pin="1234")) as run:
        run.restore("Billing")
        from handoff.persistence import capture

        sealed = Checkpoint.from_json(capture(run, "s", 3, sealer=sealer).to_json())
    assert isinstance(sealed.sensitive, str)

    done = upgrade(v2.flow, sealed, sealer)
    assert done.migrated and isinstance(done.checkpoint.sensitive, str)
    assert json.loads(sealer.unseal(done.checkpoint.sensitive)) == {"pin": "1234"}
    assert done.checkpoint.context["account"] == "4411"

    blind = upgrade(v2.flow, sealed)  # no sealer: kept, with the reason
    assert blind.checkpoint is sealed and blind.error is not None
    assert "cannot be opened for its migrations" in str(blind.error)
    assert "1234" not in str(blind.error)
