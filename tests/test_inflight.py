"""``handoff diff`` judging each change for calls in flight, against hand-made expectations."""

from __future__ import annotations

from typing import Any

from pydantic import create_model

from handoff import Context, Flow, Migration, migration
from handoff.diagram_diff import compare
from handoff.inflight import InFlight, assess, inflight_markdown

from .flowgen import TIERS, Ctx, make_flow, make_state, make_transition

GRAPH: dict[str, list[tuple[str, str]]] = {"A": [("ab", "B")], "B": [("bc", "C")], "C": []}


def base(context: type[Context] = Ctx, **overrides: Any) -> Flow[Any]:
    graph = overrides.pop("graph", GRAPH)
    return make_flow(graph, initial="A", final=["C"], context=context, **overrides)


def built(states: list[Any], context: type[Context] = Ctx, **options: Any) -> Flow[Any]:
    return Flow("generated", context=context, initial="A", final=["C"], tiers=TIERS,
                states=states, **options)


def judged(old: Flow[Any], new: Flow[Any]) -> InFlight:
    return assess(compare(old, new))


def verdicts(assessment: InFlight) -> list[tuple[str, str, str]]:
    return [(i.verdict, i.element, i.change) for i in assessment.impacts]


def ctx(**fields: Any) -> type[Context]:
    return create_model("Call", __base__=Context, **fields)  # type: ignore[call-overload,no-any-return]


def test_prompts_tiers_and_docstrings_are_safe() -> None:
    new = built([make_state("A", [make_transition("ab", "B", doc="Go to B when ready.")],
                            tier="smart", extra={"instructions": "Be brief."}),
                 make_state("B", [make_transition("bc", "C")]), make_state("C")])
    assessment = judged(base(), new)
    assert verdicts(assessment) == [
        ("safe", "state `A`", "tier: fast → smart; instructions changed"),
        ("safe", "transition `A.ab`", "docstring changed")]
    assert assessment.states == {"A": "safe", "B": "safe", "C": "safe"}
    assert not assessment.breaking and assessment.migration_code() == ""


def test_a_new_state_and_transition_are_safe_a_removed_one_tightens() -> None:
    assessment = judged(base(), base(graph={"A": [("ab", "B"), ("ad", "D")], "B": [],
                                            "C": [], "D": [("dc", "C")]}))
    assert verdicts(assessment) == [
        ("safe", "state `D`", "added"),
        ("safe", "transition `A.ad`", "added"),
        ("tightens", "transition `B.bc`", "removed"),
        ("safe", "transition `D.dc`", "added")]
    assert assessment.states == {"A": "safe", "B": "tightens", "C": "safe"}


def test_a_guard_added_or_changed_tightens_a_guard_removed_is_safe() -> None:
    def guarded(when: Any) -> Flow[Any]:
        return built([make_state("A", [make_transition("ab", "B", when=when)]),
                      make_state("B", [make_transition("bc", "C")]), make_state("C")])

    assessment = judged(base(), guarded(lambda c: c.verified))
    assert verdicts(assessment) == [
        ("tightens", "transition `A.ab`", "guard: none → c.verified (tightens)")]
    assert "refuses calls in A a move it allowed, e.g. verified=false" in (
        assessment.impacts[0].why)
    assert assessment.states["A"] == "tightens" and assessment.call_verdict("B") == "safe"
    both = judged(guarded(lambda c: c.verified), guarded(lambda c: c.limit > 5))
    assert verdicts(both)[0][0] == "tightens" and "also allows what it refused" in both.impacts[0].why
    assert verdicts(judged(guarded(lambda c: c.verified), base())) == [
        ("safe", "transition `A.ab`", "guard: c.verified → none (loosens)")]
    # judged by running both: a wider bound loosens, a narrower one tightens (one lambda
    # a line: a guard's source is found by its line)
    above_5 = guarded(lambda c: c.limit > 5)
    above_0 = guarded(lambda c: c.limit > 0)
    assert verdicts(judged(above_5, above_0))[0][0] == "safe"
    assert verdicts(judged(above_0, above_5))[0][0] == "tightens"
    is_true = guarded(lambda c: c.verified is True)
    same = judged(guarded(lambda c: c.verified), is_true)
    assert verdicts(same)[0][0] == "safe" and "same answers" in same.impacts[0].why


def can_pay_v1(c: Any) -> bool:
    """May the caller pay now?"""
    return bool(c.verified)


def can_pay_v2(c: Any) -> bool:
    """May the caller pay now?"""
    return bool(c.verified and c.limit >= 20)


def can_pay_v3(c: Any) -> bool:
    return bool(c.verified or c.limit >= 20)


def test_a_named_guard_whose_body_changed_is_judged_by_its_code() -> None:
    """``when=can_pay`` in both versions, its body changed: the name is the same, the
    answers are not."""
    def guarded(fn: Any) -> Flow[Any]:
        fn.__name__ = "can_pay"  # the same name in both versions, as in a real change
        return built([make_state("A", [make_transition("ab", "B", when=fn)]),
                      make_state("B", [make_transition("bc", "C")]), make_state("C")])

    tighter = judged(guarded(can_pay_v1), guarded(can_pay_v2))
    assert verdicts(tighter) == [
        ("tightens", "transition `A.ab`", "guard `can_pay`: its code changed (tightens)")]
    assert tighter.states["A"] == "tightens" and tighter.impacts[0].state == "A"
    assert "verified=true" in tighter.impacts[0].why
    looser = judged(guarded(can_pay_v1), guarded(can_pay_v3))
    assert verdicts(looser) == [
        ("safe", "transition `A.ab`", "guard `can_pay`: its code changed (loosens)")]
    assert looser.states["A"] == "safe"
    assert judged(guarded(can_pay_v1), guarded(can_pay_v1)).impacts == []  # unchanged


def test_a_guard_that_needs_its_module_is_reported_as_possibly_tightening() -> None:
    def guarded(fn: Any) -> Flow[Any]:
        return built([make_state("A", [make_transition("ab", "B", when=fn)]),
                      make_state("B", [make_transition("bc", "C")]), make_state("C")])

    old = guarded(lambda c: c.limit > LIMIT)
    assessment = judged(old, guarded(lambda c: c.limit > LIMIT + 1))
    (impact,) = assessment.impacts
    assert impact.verdict == "tightens" and "cannot run the guards here" in impact.why


LIMIT = 3


def test_a_removed_global_transition_tightens_every_state() -> None:
    old = base(global_edges=[("help", "C")])
    assert judged(old, base()).states == {"A": "tightens", "B": "tightens", "C": "tightens"}


def test_a_removed_state_needs_a_migration_to_where_its_transitions_now_lead() -> None:
    old = base()
    new = base(graph={"A": [("ab", "B2")], "B2": [("bc", "C")], "C": []})
    assessment = judged(old, new)
    (removed,) = [i for i in assessment.impacts if i.verdict == "needs-migration"]
    assert (removed.element, removed.fix) == ("state `B`", 'states={"B": "B2"}')
    assert "transitions that led to B now lead to B2" in removed.why
    assert assessment.call_verdict("A") == "safe"
    assert assessment.call_verdict("A", return_stack=["B"]) == "needs-migration"
    assert assessment.migration_code() == (
        f'Migration("{old.version}", "{new.version}",\n'
        '          states={"B": "B2"})\n')
    # without a transition to follow: the one new state, else where calls would resume
    assert judged(old, base(graph={"A": [], "X": [], "C": []})).suggestion.states == {"B": "X"}
    two_new = judged(old, base(graph={"A": [], "X": [], "Y": [], "C": []}))
    assert two_new.suggestion.states == {"B": "A"}
    assert "no state replaces it: calls would resume in A" in two_new.impacts[0].why


def test_context_changes_each_get_their_verdict_and_their_migration() -> None:
    old = base(ctx(age=(int, 0), name=(str | None, None), legacy=(str, ""), code=(str | None, None)))
    new = base(ctx(age=(int | None, None),       # widened: safe
                   full_name=(str | None, None),  # renamed
                   code=(str, ""),               # narrowed
                   plan=(str, ...),              # new, required
                   note=(str, "")))              # new, optional
    assessment = judged(old, new)
    assert verdicts(assessment) == [
        ("needs-migration", "field `legacy`", "removed"),
        ("needs-migration", "field `name`", "renamed to `full_name`?"),
        ("safe", "field `note`", "added: str"),
        ("needs-migration", "field `plan`", "added, required: str"),
        ("safe", "field `age`", "type: int → int | None"),
        ("needs-migration", "field `code`", "type: str | None → str")]
    assert assessment.context == "needs-migration"
    assert {s for s in old.states if assessment.call_verdict(s) == "safe"} == set()
    assert assessment.migration_code() == (
        f'@migration("{old.version}", "{new.version}",\n'
        '           fields={"legacy": None, "name": "full_name"},\n'
        '           values={"code": str})\n'
        f'def v{old.version}_to_v{new.version}(doc: dict) -> dict:\n'
        '    doc["context"]["plan"] = ...  # str: new and required; give calls in flight a value\n'
        '    return doc\n')


def test_declared_migrations_cover_what_they_handle() -> None:
    old = base(ctx(name=(str | None, None), code=(str | None, None)), version="1")
    graph = {"A": [("ab", "B2")], "B2": [("bc", "C")], "C": []}
    context = ctx(full_name=(str | None, None), code=(str, ""))
    declared = base(context, graph=graph, version="2", migrations=[Migration(
        "1", "2", states={"B": "B2"}, fields={"name": "full_name"},
        values={"code": lambda v: v or ""})])
    assessment = judged(old, declared)
    assert [i.covered_by for i in assessment.impacts if i.verdict == "needs-migration"] == [
        "1→2", "1→2", "1→2"]
    assert not assessment.breaking and assessment.migration_code() == ""

    @migration("1", "2", states={"B": "B2"})
    def by_hand(doc: dict[str, Any]) -> None:
        doc["context"]["full_name"] = doc["context"].pop("name")
        doc["context"]["code"] = doc["context"]["code"] or ""

    function = judged(old, base(context, graph=graph, version="2", migrations=[by_hand]))
    assert {i.covered_by for i in function.impacts if i.element.startswith("field")} == {
        "by_hand (a function: check it with --dry-run)"}
    # a migration that forgets a state still leaves those calls breaking
    partial = judged(old, base(context, graph=graph, version="2", migrations=[
        Migration("1", "2", fields={"name": "full_name"}, values={"code": str})]))
    assert [i.element for i in partial.breaking] == ["state `B`"]
    assert "Calls in flight break without this migration" in inflight_markdown(partial)
    assert 'states={"B": "B2"}' in partial.migration_code()
