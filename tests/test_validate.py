"""Validation: one minimal broken flow per finding, and random graphs checked against
an independent reachability computation (a transitive closure, not a BFS)."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from hypothesis import given, settings

from handoff import RETURN, Flow, FlowDefinitionError, State
from handoff.validate import Finding, check

from .flowgen import TIERS, Ctx, graphs, make_flow, make_state, make_transition


def codes(findings: list[Finding]) -> list[tuple[str, str | None]]:
    return [(f.code, f.state) for f in findings]


def definition_codes(exc: FlowDefinitionError) -> set[str]:
    return {finding.code for finding in exc.findings}


def build(states: list[type[State[Any]]], **kwargs: Any) -> Flow[Any]:
    kwargs.setdefault("initial", states[0].state_name())
    return Flow("t", context=Ctx, states=states, tiers=TIERS, **kwargs)


# -- errors: the Flow constructor raises, naming the state and the fix ----------------
def test_unknown_target() -> None:
    with pytest.raises(FlowDefinitionError) as info:
        make_flow({"A": [("go", "Nowhere")]}, initial="A", final=["A"])
    assert definition_codes(info.value) == {"unknown-target"}
    assert "A.go" in str(info.value) and "Nowhere" in str(info.value)


def test_duplicate_state() -> None:
    a1, a2 = make_state("A"), make_state("A")
    with pytest.raises(FlowDefinitionError) as info:
        build([a1, a2], final=["A"])
    assert definition_codes(info.value) == {"duplicate-state"}


def test_duplicate_trigger_between_state_and_global() -> None:
    with pytest.raises(FlowDefinitionError) as info:
        make_flow({"A": [("go", "B")], "B": []}, initial="A", final=["B"],
                  global_edges=[("go", "A")])
    assert definition_codes(info.value) == {"duplicate-trigger"}


def test_duplicate_global_trigger() -> None:
    with pytest.raises(FlowDefinitionError) as info:
        make_flow({"A": []}, initial="A", final=["A"], global_edges=[("g", "A"), ("g", "A")])
    assert definition_codes(info.value) == {"duplicate-trigger"}


def test_transition_without_docstring() -> None:
    state = make_state("A", [make_transition("go", "A", doc="")])
    with pytest.raises(FlowDefinitionError) as info:
        build([state], final=["A"])
    assert definition_codes(info.value) == {"no-docstring"}


def test_unknown_tier() -> None:
    with pytest.raises(FlowDefinitionError) as info:
        build([make_state("A", tier="genius")], final=["A"])
    assert definition_codes(info.value) == {"unknown-tier"}
    assert "genius" in str(info.value)


def test_no_initial_state() -> None:
    with pytest.raises(FlowDefinitionError) as info:
        build([make_state("A")], initial="Start", final=["A"])
    assert definition_codes(info.value) == {"no-initial"}


def test_every_error_is_reported_at_once() -> None:
    state = make_state("A", [make_transition("go", "Nowhere", doc="")], tier="genius")
    with pytest.raises(FlowDefinitionError) as info:
        build([state], final=["A"])
    assert definition_codes(info.value) == {"unknown-target", "no-docstring", "unknown-tier"}


# -- warnings: check() only; errors with strict ----------------------------------------
def test_callcenter_example_is_clean() -> None:
    from examples.callcenter.flow import flow

    assert check(flow, strict=True) == []


def test_unreachable_state() -> None:
    flow = make_flow({"A": [("go", "B")], "B": [], "C": [("back", "A")]},
                     initial="A", final=["B"])
    assert codes(check(flow)) == [("unreachable", "C")]


def test_dead_end() -> None:
    flow = make_flow({"A": [("go", "B"), ("done", "Z")], "B": [("stay", "B")], "Z": []},
                     initial="A", final=["Z"])
    # B only loops on itself: not a way out; its missing path to Z is part of the same problem
    assert codes(check(flow)) == [("dead-end", "B")]


def test_global_transition_is_a_way_out() -> None:
    flow = make_flow({"A": [("go", "B")], "B": [], "H": []}, initial="A", final=["H"],
                     global_edges=[("human", "H")])
    assert check(flow, strict=True) == []


def test_no_path_to_final() -> None:
    flow = make_flow({"A": [("go", "B"), ("end", "Z")], "B": [("c", "C")], "C": [("b", "B")],
                      "Z": []}, initial="A", final=["Z"])
    assert codes(check(flow)) == [("no-path-to-final", "B"), ("no-path-to-final", "C")]


def test_no_final_state() -> None:
    flow = make_flow({"A": [("go", "B")], "B": [("back", "A")]}, initial="A")
    assert codes(check(flow)) == [("no-final", None)]


def _guarded(name: str, when: Any, refused: Any = None) -> Flow[Any]:
    tdef = make_transition(name, "B", when=when, refused=refused)
    return build([make_state("A", [tdef]), make_state("B")], final=["B"])


def test_guard_reading_a_missing_context_field() -> None:
    findings = check(_guarded("go", lambda c: c.verified and c.vip))
    assert [(f.code, f.state, f.trigger) for f in findings] == [
        ("unknown-context-field", "A", "go")]
    assert "'vip'" in findings[0].message and "Ctx" in findings[0].message


def test_guard_with_arguments_and_named_function() -> None:
    def enough(c: Any, amount: float = 0.0) -> bool:  # optional: the transition has no amount
        return amount <= c.limit + c.bonus

    assert [f.message for f in check(_guarded("go", enough))] == [
        "the guard reads 'bonus', which Ctx does not have"]


def test_a_guard_that_needs_an_argument_the_transition_lacks_fails_the_build() -> None:
    with pytest.raises(FlowDefinitionError) as caught:
        _guarded("go", lambda c, amount: amount <= c.limit)
    [finding] = caught.value.findings
    assert (finding.code, finding.state, finding.trigger) == ("guard-parameter", "A", "go")
    assert "'amount'" in finding.message


def test_refusal_function_is_checked_too() -> None:
    findings = check(_guarded("go", lambda c: c.verified, refused=lambda c: f"{c.reason}"))
    assert [f.message for f in findings] == ["the refusal reads 'reason', which Ctx does not have"]


def test_guard_without_source_is_still_checked() -> None:
    namespace: dict[str, Any] = {}
    exec("guard = lambda c: c.verfied", namespace)  # typo; built from a string: no source file
    findings = check(_guarded("go", namespace["guard"]))
    assert [f.code for f in findings] == ["unknown-context-field"]
    assert "'verfied'" in findings[0].message


def test_guard_that_cannot_be_read_is_not_reported() -> None:
    guard = functools.partial(lambda c, extra: c.nothing_known, extra=1)
    assert check(_guarded("go", guard)) == []


def test_guard_reading_methods_and_fields_is_fine() -> None:
    assert check(_guarded("go", lambda c: c.verified or c.model_dump()["limit"] > 1)) == []


def test_untyped_argument() -> None:
    async def go(self: Any, ctx: Any, amount) -> None:  # the missing type is the point
        """Call to go."""

    from handoff import transition

    tdef = transition(to="B")(go)
    flow = build([make_state("A", [tdef]), make_state("B")], final=["B"])
    findings = check(flow)
    assert [(f.code, f.trigger) for f in findings] == [("untyped-argument", "go")]
    assert "'amount'" in findings[0].message


def side_trip_flow(*, returns: bool = True, lost_caller: bool = False) -> Flow[Any]:
    """Triage -> Billing -> Done; from anywhere a side trip to Verify, which returns."""
    states = [
        make_state("Triage", [make_transition("billing", "Billing")]),
        make_state("Billing", [make_transition("done", "Done")]),
        make_state("Verify", [make_transition("confirmed", RETURN)]),
        make_state("Done"),
    ]
    if lost_caller:  # unreachable, although a return could "go back" to it
        states.append(make_state("Lost", [make_transition("check", "Verify", returns=True),
                                          make_transition("bye", "Done")]))
    return Flow("trips", context=Ctx, initial="Triage", states=states, final=["Done"],
                tiers=TIERS,
                global_transitions=[make_transition("verify", "Verify", method=False,
                                                    returns=returns)])


def test_a_return_is_a_way_out_and_reaches_nothing_new() -> None:
    assert check(side_trip_flow(), strict=True) == []
    assert codes(check(side_trip_flow(lost_caller=True))) == [("unreachable", "Lost")]


def test_return_without_side_trip() -> None:
    findings = check(side_trip_flow(returns=False))
    assert [(f.code, f.state, f.trigger) for f in findings] == [
        ("return-without-side-trip", "Verify", "confirmed"),
        ("no-path-to-final", "Verify", None),  # nowhere to return to: stuck in Verify
    ]


def test_strict_turns_warnings_into_errors() -> None:
    flow = make_flow({"A": [("go", "B")], "B": [], "C": []}, initial="A", final=["B"])
    assert {f.severity for f in check(flow)} == {"warning"}
    assert {f.severity for f in check(flow, strict=True)} == {"error"}
    assert codes(check(flow)) == codes(check(flow, strict=True))


# -- random graphs against an independent computation ---------------------------------
def closure(names: list[str], edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Reflexive transitive closure by Floyd-Warshall (deliberately not a search)."""
    reach = {(a, a) for a in names} | edges
    for k in names:
        for i in names:
            if (i, k) in reach:
                for j in names:
                    if (k, j) in reach:
                        reach.add((i, j))
    return reach


@settings(max_examples=150, deadline=None)
@given(graphs())
def test_graph_findings_agree_with_transitive_closure(spec: dict[str, Any]) -> None:
    flow = make_flow(**spec)
    names = list(spec["graph"])
    edges = {(s, t) for s, out in spec["graph"].items() for _, t in out}
    edges |= {(s, t) for s in names for _, t in spec["global_edges"]}
    reach = closure(names, edges)
    final = set(spec["final"])

    unreachable = {s for s in names if (spec["initial"], s) not in reach}
    dead = {s for s in names if s not in final and not any(a == s != b for a, b in edges)}
    stuck = {s for s in names if final and not any((s, f) in reach for f in final)} - dead

    found = check(flow)
    by_code: dict[str, set[str | None]] = {}
    for f in found:
        by_code.setdefault(f.code, set()).add(f.state)
    assert by_code.get("unreachable", set()) == unreachable
    assert by_code.get("dead-end", set()) == dead
    assert by_code.get("no-path-to-final", set()) == stuck
    assert ("no-final" in by_code) == (not final)
    assert set(by_code) <= {"unreachable", "dead-end", "no-path-to-final", "no-final"}
