"""``handoff diff`` decided by effect: each kind of change judged, then checked against a
real resume of the old version's checkpoints by the new flow; every printed migration
compiles, and one that needed a version bump builds into the new Flow.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import pytest
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from handoff import Flow, Migration, migration
from handoff.cli import app
from handoff.diagram_diff import compare
from handoff.diff_effect import check_by_resuming, representative
from handoff.inflight import InFlight, assess, worst
from handoff.persistence import Checkpoint, Checkpointer, MemoryStore
from handoff.resume import restore_run
from handoff.snapshot import snapshot
from handoff.telemetry import HandoffMetrics

from .flowgen import make_state, make_transition
from .ops_support import REPO
from .test_inflight import base, built, ctx

OLD = ctx(count=(int, 0), channel=(Literal["sms", "mail"], "sms"), name=(str | None, None),
          code=(str, ""))
CHANGES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # kind of change: (old flow options, new flow options)
    "int widened to float": ({}, {"context": ctx(count=(float, 0.0), channel=(
        Literal["sms", "mail"], "sms"), name=(str | None, None), code=(str, ""))}),
    "Literal gains a value": ({}, {"context": ctx(count=(int, 0), channel=(
        Literal["sms", "mail", "call"], "sms"), name=(str | None, None), code=(str, ""))}),
    "Literal loses a value": ({}, {"context": ctx(count=(int, 0), channel=(
        Literal["sms"], "sms"), name=(str | None, None), code=(str, ""))}),
    "str narrowed to int": ({}, {"context": ctx(count=(int, 0), channel=(
        Literal["sms", "mail"], "sms"), name=(str | None, None), code=(int, 0))}),
    "field removed": ({}, {"context": ctx(count=(int, 0), channel=(
        Literal["sms", "mail"], "sms"), code=(str, ""))}),
    "field renamed": ({}, {"context": ctx(count=(int, 0), channel=(
        Literal["sms", "mail"], "sms"), full_name=(str | None, None), code=(str, ""))}),
    "optional field added": ({}, {"context": ctx(count=(int, 0), channel=(
        Literal["sms", "mail"], "sms"), name=(str | None, None), code=(str, ""),
        note=(str, ""))}),
    "state removed": ({}, {"graph": {"A": [("ab", "B2")], "B2": [("bc", "C")], "C": []}}),
    "state renamed with its migration": ({"version": "1"}, {
        "version": "2", "graph": {"A": [("ab", "B2")], "B2": [("bc", "C")], "C": []},
        "migrations": [Migration("1", "2", states={"B": "B2"})]}),
    "state renamed, same version": ({"version": "1"}, {
        "version": "1", "graph": {"A": [("ab", "B2")], "B2": [("bc", "C")], "C": []}}),
    "transition added": ({}, {"graph": {"A": [("ab", "B"), ("ac", "C")],
                                               "B": [("bc", "C")], "C": []}}),
    "required field added": ({}, {"context": ctx(count=(int, 0), channel=(
        Literal["sms", "mail"], "sms"), name=(str | None, None), code=(str, ""),
        plan=(str, ...))}),
    # one lambda a line: a guard's source is found by its line
    "guard added": ({}, {"guard": lambda c: c.count > 0}),
    "guard tightened": ({"guard": lambda c: c.count >= 0},
                        {"guard": lambda c: c.count > 0}),
    "guard loosened": ({"guard": lambda c: c.count > 0},
                       {"guard": lambda c: c.count >= 0}),
}


def _flow(options: dict[str, Any]) -> Flow[Any]:
    options = dict(options)
    context = options.pop("context", OLD)
    guard = options.pop("guard", None)
    if guard is None:
        return base(context, **options)
    return built([make_state("A", [make_transition("ab", "B", when=guard)]),
                  make_state("B", [make_transition("bc", "C")]), make_state("C")], context)


def _flows(kind: str) -> tuple[Flow[Any], Flow[Any]]:
    old_options, new_options = CHANGES[kind]
    return _flow(old_options), _flow(new_options)


def _judged(old: Flow[Any], new: Flow[Any]) -> InFlight:
    in_flight = assess(compare(old, new))
    check_by_resuming(in_flight, new)
    return in_flight


def _resume(old: Flow[Any], new: Flow[Any], state: str, values: dict[str, Any]) -> tuple[
        str, str, dict[str, Any]] | None:
    """A real resume of a checkpoint of ``old`` by ``new``: (outcome, state, Context) or
    None when it cannot be restored at all."""
    checkpoint = Checkpoint(call_id="c", flow=new.name, flow_version=old.version, state=state,
                            seq=1, context=json.loads(json.dumps(values)))
    try:
        run, outcome = restore_run(new, checkpoint, Checkpointer(
            MemoryStore(), metrics=HandoffMetrics(CollectorRegistry())))
    except Exception:
        return None
    with run:
        return outcome, run.state, json.loads(run.context.model_dump_json())


@pytest.mark.parametrize("kind", sorted(CHANGES))
def test_the_verdict_is_what_resuming_does(kind: str) -> None:
    old, new = _flows(kind)
    in_flight = _judged(old, new)
    assert in_flight.resume_check is not None
    for state in old.states:
        verdict = in_flight.call_verdict(state)
        lossless = True
        for values in representative(snapshot(old).context):
            got = _resume(old, new, state, values)
            kept = got is not None and got[0] in ("resumed", "migrated") and (
                got[1] == state or got[0] == "migrated") and all(
                got[2].get(k) == v for k, v in values.items() if k in got[2]) and all(
                k in got[2] for k in values if got[0] != "migrated")
            lossless = lossless and kept
        if verdict == "safe":
            assert lossless, (kind, state, in_flight.impacts)
        if not lossless:
            assert verdict == "needs-migration", (kind, state, in_flight.impacts)


def test_each_kind_gets_its_verdict() -> None:
    def field_verdict(kind: str, name: str) -> str:
        in_flight = _judged(*_flows(kind))
        return next(i.verdict for i in in_flight.impacts if i.element == f"field `{name}`")

    assert field_verdict("int widened to float", "count") == "safe"
    assert field_verdict("Literal gains a value", "channel") == "safe"
    assert field_verdict("Literal loses a value", "channel") == "needs-migration"
    assert field_verdict("str narrowed to int", "code") == "needs-migration"
    assert field_verdict("optional field added", "note") == "safe"
    renamed = _judged(*_flows("state renamed with its migration"))
    assert renamed.call_verdict("B") == "needs-migration" and not renamed.breaking
    assert _judged(*_flows("transition added")).call_verdict("B") == "safe"


@pytest.mark.parametrize("kind", sorted(CHANGES))
def test_every_printed_migration_is_valid_python(kind: str) -> None:
    old, new = _flows(kind)
    code = _judged(old, new).migration_code()
    if not code:
        return
    namespace: dict[str, Any] = {"Migration": Migration, "migration": migration}
    exec(compile(code, f"<migration for {kind}>", "exec"), namespace)
    made = [v for v in namespace.values() if isinstance(v, Migration)]
    if not made:  # a bare Migration(...) expression: evaluate it
        made = [eval(compile(code, "<migration>", "eval"), namespace)]
    assert len(made) == 1 and made[0].source == old.version


def test_a_rename_without_a_version_bump_says_to_bump_first() -> None:
    old, new = _flows("state renamed, same version")
    in_flight = _judged(old, new)
    assert in_flight.bump == "2"
    code = in_flight.migration_code()
    assert code.startswith('# first bump the flow\'s version: Flow(..., version="2")\n')
    assert 'Migration("1", "2",' in code
    made = eval(compile(code.split("\n", 1)[1], "<migration>", "eval"),
                {"Migration": Migration})
    fixed = base(OLD, version="2", graph={"A": [("ab", "B2")], "B2": [("bc", "C")], "C": []},
                 migrations=[made])  # Flow() accepts it once the version is bumped
    assert not _judged(old, fixed).breaking


def test_the_cli_prints_migrations_that_compile() -> None:
    result = CliRunner().invoke(app, ["diff", "tests.versioned.callcenter_v1:flow",
                                      "tests.versioned.callcenter_v2:unmigrated"])
    assert result.exit_code == 0, result.output
    blocks = re.findall(r"```python\n(.*?)```", result.output, re.S)
    assert blocks and "Checked by effect: resumed" in result.output
    for block in blocks:
        compile(block, "<handoff diff>", "exec")


def _diff_says(in_flight: InFlight) -> str:
    verdict = worst(in_flight.call_verdict(s) for s in (st.name for st in in_flight.old.states))
    text = {"safe": "safe", "tightens": "tightens", "needs-migration": "needs a migration"}[
        verdict]
    if verdict == "needs-migration" and not in_flight.breaking:
        text += " (declared: covered)"
    if in_flight.bump:
        text += f", bump `version` to {in_flight.bump}"
    return text


def _resume_does(old: Flow[Any], new: Flow[Any]) -> str:
    """The worst thing a real resume of a representative checkpoint of ``old`` did."""
    seen = set()
    for state in old.states:
        for values in representative(snapshot(old).context):
            got = _resume(old, new, state, values)
            if got is None:
                seen.add("is not restored: set aside, the call starts fresh")
            elif got[1] != state and got[0] != "migrated":
                seen.add("resumes in the fallback state")
            elif got[0] == "migrated":
                seen.add("is migrated, resumes where the migration puts it")
            elif any(got[2].get(k, object()) != v for k, v in values.items()):
                seen.add("resumes where it was, loses a value")
    order = ["is not restored: set aside, the call starts fresh", "resumes in the fallback state",
             "resumes where it was, loses a value",
             "is migrated, resumes where the migration puts it"]
    return next((o for o in order if o in seen), "resumes as it was")


def test_the_operations_table_is_what_the_code_does() -> None:
    """docs/operations.md's table of kinds of change, row by row, against diff and resume."""
    text = (REPO / "docs" / "operations.md").read_text()
    table = text.split("<!-- kinds of change: tests/test_diff_effect.py -->")[1].split("\n\n")[1]
    rows = [[c.strip() for c in line.strip("|").split("|")]
            for line in table.splitlines()[2:]]
    assert sorted(r[0] for r in rows) == sorted(CHANGES)
    for kind, says, does in rows:
        old, new = _flows(kind)
        assert (kind, _diff_says(_judged(old, new)), _resume_does(old, new)) == (
            kind, says, does)
