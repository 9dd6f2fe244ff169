"""FlowRun without a session: the FSM, guards, bodies, rollback and the log."""

from __future__ import annotations

import asyncio

import pytest

from handoff import FlowError, TransitionRefused

from .small_flows import Ticket, flow, make_flow


async def test_runs_share_one_machine_but_not_state_or_context() -> None:
    a, b = flow.new_run(), flow.new_run()
    await a.go("named", name="Ann")
    assert (a.state, b.state) == ("Back", "Front")
    assert a.context is not b.context and b.context.name is None
    # the shared Machine moved each run's own model
    assert flow.machine.get_model_state(a._fsm).name == "Back"
    assert flow.machine.get_model_state(b._fsm).name == "Front"


async def test_log_records_source_target_trigger_arguments_time() -> None:
    run = flow.new_run()
    await run.go("named", name="Ann")
    run.context.verified = True
    await run.go("finish", amount=12.5)
    assert [(r.source, r.target, r.trigger, r.arguments) for r in run.log] == [
        ("Front", "Back", "named", {"name": "Ann"}),
        ("Back", "Done", "finish", {"amount": 12.5}),
    ]
    assert run.log[0].at <= run.log[1].at and run.is_final()


async def test_invalid_trigger_is_refused_with_what_is_available() -> None:
    run = flow.new_run()
    with pytest.raises(TransitionRefused) as err:
        await run.go("finish", amount=1.0)
    assert err.value.kind == "invalid" and "named" in err.value.message
    assert run.state == "Front" and run.log == []


async def test_guard_and_body_refusals_roll_back_everything() -> None:
    run = flow.new_run()
    await run.go("named", name="Ann")
    with pytest.raises(TransitionRefused, match="verify the caller first"):
        await run.go("finish", amount=1.0)
    run.context.verified = True
    snapshot = run.context.model_dump()
    with pytest.raises(TransitionRefused, match="supervisor"):
        await run.go("finish", amount=5000.0)
    assert run.context.model_dump() == snapshot  # in-place list append undone too
    assert run.state == "Back"
    assert [r.kind for r in run.refusals] == ["guard", "body"]


async def test_exception_in_a_guard_refuses_without_moving() -> None:
    from handoff import Context, Flow, State, transition

    class Ctx(Context):
        n: int = 0

    class A(State[Ctx]):
        """A."""

        instructions = "x"

        @transition(to="B", when=lambda c: 1 / c.n > 0)
        async def go_b(self) -> None:
            """Go to B."""

    class B(State[Ctx]):
        """B."""

        instructions = "x"

    f = Flow("g", context=Ctx, initial=A, states=[A, B], final=[B])
    run = f.new_run()
    with pytest.raises(TransitionRefused) as err:
        await run.go("go_b")
    assert err.value.kind == "error" and run.state == "A"


async def test_wrong_context_type_is_refused() -> None:
    from handoff import Context

    class Other(Context):
        pass

    with pytest.raises(FlowError, match="needs a Ticket context"):
        flow.new_run(Other())  # type: ignore[arg-type]


async def test_observers_see_transitions_and_refusals() -> None:
    seen: list[str] = []

    class Spy:
        def on_transition(self, run: object, record: object) -> None:
            seen.append(f"t:{record.trigger}")  # type: ignore[attr-defined]

        def on_refusal(self, run: object, refusal: object) -> None:
            seen.append(f"r:{refusal.kind}")  # type: ignore[attr-defined]

    f = make_flow()
    f.observers.append(Spy())
    run = f.new_run(Ticket())
    await run.go("named", name="x")
    with pytest.raises(TransitionRefused):
        await run.go("finish", amount=1.0)
    assert seen == ["t:named", "r:guard"]


async def test_the_shared_machine_keeps_no_run_alive() -> None:
    import gc
    import weakref

    f = make_flow()
    runs = [f.new_run() for _ in range(50)]
    for run in runs[:25]:
        await run.go("named", name="x")
    refs = [weakref.ref(run) for run in runs]
    fsms = [weakref.ref(run._fsm) for run in runs]
    del runs, run
    gc.collect()
    assert all(r() is None for r in refs) and all(m() is None for m in fsms)


async def test_a_closed_run_keeps_its_record_but_cannot_move() -> None:
    f = make_flow()
    with f.new_run() as run:
        await run.go("named", name="x")
    assert run.closed and run.state == "Back" and run.log[-1].trigger == "named"
    with pytest.raises(FlowError, match="closed"):
        await run.go("hang_up")


async def test_a_session_run_is_closed_when_its_session_closes() -> None:
    from handoff.testing import ScriptedLLM

    f = make_flow()
    async with f.session(llm=ScriptedLLM(["Hello."])) as run:
        assert not run.closed
    await asyncio.sleep(0)
    assert run.closed
