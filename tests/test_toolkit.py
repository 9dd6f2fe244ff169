"""The toolkit's strategies, coverage, paths and session driver, checked on hand-counted flows."""

from __future__ import annotations

import asyncio
import gc
import logging
import math

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from handoff import TransitionRefused
from handoff.testing import (
    Attempt,
    CoverageObserver,
    FlowDriver,
    ReplyLike,
    ScriptedLLM,
    Turn,
    arguments,
    call,
    contexts,
    per_state,
    replay,
    shortest_paths,
    transition_cover,
    triggers,
    walks,
)
from handoff.testing.strategies import UNDECLARED, trigger_names

from .test_toolkit_flows import Desk, desk_flow, vault_flow

logging.getLogger("livekit.agents").setLevel(logging.CRITICAL)

flow = desk_flow()
QUICK = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


# -- strategies ---------------------------------------------------------------------------
@QUICK
@given(contexts(flow))
def test_contexts_are_valid_and_honour_field_types(ctx: Desk) -> None:
    assert isinstance(ctx, Desk)
    assert Desk.model_validate(ctx.model_dump()) == ctx
    assert ctx.name is None or isinstance(ctx.name, str)
    assert isinstance(ctx.verified, bool) and isinstance(ctx.visits, int)
    assert ctx.visits >= 0  # the Field(ge=0) constraint holds
    assert ctx.mode in ("walk-in", "phone")
    assert math.isfinite(ctx.amount)
    assert all(isinstance(t, str) for t in ctx.tags)


def test_contexts_reach_both_sides_of_each_field() -> None:
    fast = settings(database=None, phases=[Phase.generate])
    for condition in (lambda c: c.verified, lambda c: not c.verified,
                      lambda c: c.mode == "walk-in", lambda c: c.mode == "phone",
                      lambda c: c.name is None, lambda c: c.name is not None):
        assert condition(find(contexts(flow), condition, settings=fast))


@QUICK
@given(st.data())
def test_arguments_follow_the_type_hints(data: st.DataObject) -> None:
    args = data.draw(arguments(flow, "finish"))
    assert set(args) == {"amount"} and isinstance(args["amount"], float)
    assert math.isfinite(args["amount"])
    assert data.draw(arguments(flow, "restart")) == {}
    named = data.draw(arguments(flow, "named", {"name": st.just("Ann")}))
    assert named == {"name": "Ann"}


def test_triggers_are_the_declared_ones() -> None:
    assert trigger_names(flow) == ["finish", "hang_up", "named", "restart"]
    assert find(triggers(flow, undeclared=True), lambda t: t == UNDECLARED) == UNDECLARED


def test_walks_mix_valid_and_invalid_attempts() -> None:
    declared = set(trigger_names(flow)) | {UNDECLARED}

    def invalid_first(walk: list[Attempt]) -> bool:
        return bool(walk) and walk[0].trigger not in flow.table[flow.initial]

    def reaches_done(walk: list[Attempt]) -> bool:
        return replay(flow, walk, Desk(verified=True)).state == "Done" and len(walk) >= 2

    assert find(walks(flow), invalid_first)[0].trigger in declared
    done = find(walks(flow, max_len=4), reaches_done)
    assert [a.trigger for a in done][-1] in ("finish", "hang_up")


@QUICK
@given(contexts(flow), walks(flow, max_len=10))
def test_replaying_walks_on_a_correct_flow_finds_nothing(ctx: Desk, walk: list[Attempt]) -> None:
    run = replay(flow, walk, ctx)
    assert run.state in flow.states
    assert len(run.log) + len(run.refusals) == len(walk)  # every attempt left a record


# -- coverage -----------------------------------------------------------------------------
async def _coverage_runs(observer: CoverageObserver) -> None:
    run = flow.new_run()
    await run.go("named", name="Ann")
    with pytest.raises(TransitionRefused):
        await run.go("finish", amount=5.0)  # guard refused
    run.context.verified = True
    with pytest.raises(TransitionRefused):
        await run.go("finish", amount=5000.0)  # guard allowed, body refused
    with pytest.raises(TransitionRefused):
        await run.go("restart_everything")  # undeclared: no item
    await run.go("finish", amount=5.0)


def test_coverage_counts_match_a_hand_count() -> None:
    observer = CoverageObserver()
    cov = observer.watch(flow)
    try:
        assert (cov.total, cov.covered) == (8, 0)
        asyncio.run(_coverage_runs(observer))
        # Front.named, Back.finish, and both guard outcomes of Back.finish
        assert cov.covered == 4 and cov.percent == 50.0
        assert cov.transitions[("Back", "finish")] == 1
        assert cov.guards[("Back", "finish", "refused")] == 1
        assert cov.guards[("Back", "finish", "allowed")] == 2  # the body refusal passed the guard
        assert cov.missing() == ["Front.hang_up", "Back.hang_up", "Back.restart", "Done.hang_up"]

        async def hang_up_from_front() -> None:
            await flow.new_run().go("hang_up")

        asyncio.run(hang_up_from_front())
        assert cov.covered == 5 and cov.percent == 62.5
        assert "transitions 3/6, guard outcomes 2/2" in cov.report()
    finally:
        observer.unwatch_all()
    assert observer not in flow.observers


def test_coverage_counts_llm_transitions_through_a_session() -> None:
    observer = CoverageObserver()
    cov = observer.watch(flow)

    async def conversation() -> None:
        async with FlowDriver(flow) as driver:
            await driver.turn(call("named", name="Bo"))
            await driver.turn(call("finish", amount=1.0))  # refused by the guard
            await driver.turn(call("restart"))

    try:
        asyncio.run(conversation())
    finally:
        observer.unwatch_all()
    assert dict(cov.transitions) == {("Front", "named"): 1, ("Back", "restart"): 1}
    assert dict(cov.guards) == {("Back", "finish", "refused"): 1}
    assert cov.covered == 3


# -- paths --------------------------------------------------------------------------------
def test_shortest_paths_match_a_hand_count() -> None:
    paths = shortest_paths(flow)
    assert paths.missing == {}
    assert {p.target: [s.trigger for s in p.steps] for p in paths} == {
        "Front": [], "Back": ["named"], "Done": ["hang_up"],
    }


def test_transition_cover_takes_every_declared_transition() -> None:
    paths = transition_cover(flow)
    assert paths.missing == {}
    covered = {t for p in paths for t in p.transitions}
    declared = {(s, t) for s in flow.states for t in flow.table[s]}
    assert covered == declared
    finish = next(s for p in paths for s in p.steps if s.trigger == "finish")
    assert finish.setup == {"verified": True} and finish.found_by == "search+setup"
    assert finish.arguments["amount"] <= 1000  # the body refuses more

    async def replay_all() -> None:
        for path in paths:
            run = flow.new_run()
            await path.replay(run)
            assert run.state == path.target
            assert [(r.source, r.trigger) for r in run.log] == path.transitions

    asyncio.run(replay_all())


async def test_paths_are_refused_inside_a_running_loop_and_found_from_a_thread() -> None:
    """Inside a running loop the search's own loop cannot run: the call says so (it used to
    report every edge as "no path found"); from a thread it works as from sync code."""
    for search in (transition_cover, shortest_paths):
        with pytest.raises(RuntimeError, match=rf"^{search.__name__}\(\) runs the flow on an "
                                               r"event loop of its own and cannot be called "
                                               r"from a running one.*asyncio.to_thread"):
            search(flow)
    paths = await asyncio.to_thread(transition_cover, flow)
    assert paths.missing == {} and {t for p in paths for t in p.transitions} == {
        (s, t) for s in flow.states for t in flow.table[s]}


def test_paths_report_what_they_cannot_reach() -> None:
    vault = vault_flow()
    paths = shortest_paths(vault, max_examples=30)
    assert {p.target for p in paths} == {"Lobby", "Street"}
    assert "Vault" in paths.missing and "open_vault" in paths.missing["Vault"]
    with pytest.raises(AssertionError, match="Vault"):
        paths.require_complete()
    cover = transition_cover(vault, max_examples=30)
    assert set(cover.missing) == {"Lobby.open_vault"}


def test_paths_use_given_arguments_first() -> None:
    paths = shortest_paths(flow, arguments={"named": {"name": "Dana"}})
    back = next(p for p in paths if p.target == "Back")
    assert back.steps[0].arguments == {"name": "Dana"} and back.steps[0].found_by == "given"


# -- the scripted LLM and the session driver ----------------------------------------------
def test_turns_know_which_state_asked() -> None:
    async def conversation() -> list[str | None]:
        async with FlowDriver(flow) as driver:
            await driver.turn(call("named", name="Cy"))
            await driver.turn("just chatting")
            return [t.state for t in driver.llm.turns]

    states = asyncio.run(conversation())
    assert states[0] == "Front" and states[-1] == "Back"
    assert "Front" in states and "Back" in states


@pytest.mark.parametrize("at", ["thinking", "handing_over"])
def test_an_interrupted_handoff_is_all_or_nothing(at: str) -> None:
    async def conversation() -> None:
        async with FlowDriver(flow) as driver:
            run = driver.run
            await driver.interrupted_turn(call("named", name="Di"), at=at)  # type: ignore[arg-type]
            session = run.session
            assert session is not None
            assert run.state == session.current_agent.id and not run.in_transition
            if run.state == "Front":
                assert run.context.name is None and run.log == []
            else:
                assert run.context.name == "Di" and [r.trigger for r in run.log] == ["named"]
            # the session goes on normally afterwards
            await driver.turn(call("hang_up"))
            assert run.state == "Done" == session.current_agent.id

    asyncio.run(conversation())


def test_a_per_state_policy_answers_by_the_asking_state() -> None:
    def front(turn: Turn) -> ReplyLike:
        return call("named", name="Eve") if turn.last_user_text else "Hello."

    def back(turn: Turn) -> ReplyLike:
        return call("hang_up") if turn.last_user_text == "that's all" else "Back office."

    llm = ScriptedLLM(per_state({"Front": front, "Back": back}, default="Bye."))

    async def conversation() -> list[str]:
        async with flow.session(llm=llm) as run:
            await run.session.run(user_input="I'm Eve")
            assert run.state == "Back"
            await run.session.run(user_input="that's all")
            return [r.trigger for r in run.log]

    assert asyncio.run(conversation()) == ["named", "hang_up"]
    assert [t.state for t in llm.turns][-1] == "Done"


def test_finished_runs_do_not_stay_in_the_shared_machine() -> None:
    """Thousands of generated runs must not pile up in the flow's shared Machine."""
    leaky = desk_flow("leak-check")
    before = len(leaky.machine.models)
    for _ in range(50):
        leaky.new_run()
    gc.collect()
    assert len(leaky.machine.models) == before
