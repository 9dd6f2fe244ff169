"""LiveKit's own sub-tasks inside a State: AgentTask, TaskGroup and the beta.workflows tasks.

A State's tool awaits ``GetEmailTask()`` (or a ``TaskGroup`` of prebuilt tasks) exactly as
LiveKit's docs write it, with no extra arguments: the task talks with the state's tier
LLM, the run knows it is active, and invariant 1 holds between every turn (the active
agent is the state's agent, or a task it is awaiting). An interruption or the session
closing inside the task leaves the flow consistent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest
from livekit.agents import AgentSession, AgentTask, RunContext, function_tool
from livekit.agents.beta import workflows
from livekit.agents.beta.workflows import GetEmailTask, GetPhoneNumberTask, TaskGroup

from handoff import Context, Flow, FlowRun, State, transition
from handoff.testing import ScriptedLLM, Turn, call, settle


class Caller(Context):
    email: str | None = None
    phone: str | None = None
    task_error: str | None = None


class Desk(State[Caller]):
    """Takes the caller's contact details."""

    instructions = "You are the desk."

    @function_tool
    async def collect_email(self, ctx: RunContext[Caller]) -> str:
        """Collect the caller's email address."""
        try:
            result = await GetEmailTask()
        except Exception as exc:  # LiveKit completes a cancelled task with a ToolError
            ctx.userdata.task_error = str(exc)
            raise
        ctx.userdata.email = result.email_address
        return f"The email is {result.email_address}."

    @function_tool
    async def collect_contact(self, ctx: RunContext[Caller]) -> str:
        """Collect the caller's email and phone number."""
        group = TaskGroup(summarize_chat_ctx=False)
        group.add(lambda: GetEmailTask(), id="email", description="Collect the email address")
        group.add(lambda: GetPhoneNumberTask(), id="phone", description="Collect the phone number")
        results = (await group).task_results
        ctx.userdata.email = results["email"].email_address
        ctx.userdata.phone = results["phone"].phone_number
        return "Contact details recorded."

    @transition(to="Done")
    async def finish(self, ctx: RunContext[Caller]) -> None:
        """Call when the caller has nothing more."""


class Done(State[Caller]):
    """Says goodbye."""

    instructions = "Say goodbye."


flow = Flow("contacts", context=Caller, initial=Desk, states=[Desk, Done], final=[Done])


def policy(turn: Turn) -> Any:
    said = turn.last_user_text
    if turn.agent_id == "Desk":
        if turn.answering_tool:
            return "Thank you."
        if said == "email please":
            return call("collect_email")
        if said == "contact please":
            return call("collect_contact")
        if said == "bye":
            return call("finish")
        return "Desk here."
    if turn.agent_id == "get_email_task":
        if "@" in said and not turn.answering_tool:
            return call("update_email_address", email=said)
        return "What is your email address?"
    if turn.agent_id == "get_phone_number_task":
        if said.startswith("+") and not turn.answering_tool:
            return call("update_phone_number", phone_number=said)
        return "What is your phone number?"
    return "Goodbye."


def tool_finished(run: FlowRun[Any], name: str) -> asyncio.Future[None]:
    """Resolves when the state's tool ``name`` has returned (LiveKit may end a turn's
    RunResult while a task's parent tool is still finishing in the background)."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def seen(event: Any) -> None:
        if not done.done() and any(c.name == name for c in event.function_calls):
            done.set_result(None)

    run.session.on("function_tools_executed", seen)
    return done


def check_invariant_1(run: FlowRun[Any]) -> None:
    """DESIGN §2.1 with tasks: the active agent is the state's agent or a task it awaits."""
    agent = run.session.current_agent
    assert run.agent is not None and run.agent.id == run.state
    assert agent is run.agent or agent in run.tasks, (agent.id, run.state, run.tasks)
    if agent is run.agent:
        assert run.tasks == ()
    else:
        assert run.tasks[-1] is agent and isinstance(agent, AgentTask)
    assert not run.in_transition or run.tasks  # a body may await a task: the move waits


async def test_get_email_task_inside_a_state_tool_keeps_invariant_1(
    caplog: pytest.LogCaptureFixture,
) -> None:
    llm = ScriptedLLM(policy)
    caplog.set_level(logging.WARNING)
    async with flow.session(llm=llm) as run:
        check_invariant_1(run)
        await run.session.run(user_input="email please")
        check_invariant_1(run)
        assert run.state == "Desk" and [t.id for t in run.tasks] == ["get_email_task"]
        # the task talked with the state's tier LLM, inherited without any argument
        asked = [t for t in llm.turns if t.agent_id == "get_email_task"]
        assert asked and "update_email_address" in asked[0].tool_names
        assert run.tasks[0].llm is run.agent.llm

        finished = tool_finished(run, "collect_email")
        await run.session.run(user_input="ann@example.com")
        check_invariant_1(run)
        await asyncio.wait_for(finished, 10)
        assert run.tasks == () and run.context.email == "ann@example.com"
        assert run.refusals == []  # the task's own tool is not a made-up tool of Desk

        await run.session.run(user_input="bye")
        check_invariant_1(run)
        assert run.state == "Done" and [r.trigger for r in run.log] == ["finish"]
    assert not [r for r in caplog.records if "outside the flow" in r.getMessage()]


async def test_a_task_group_of_two_prebuilt_tasks_inside_a_state() -> None:
    async with flow.session(llm=ScriptedLLM(policy)) as run:
        await run.session.run(user_input="contact please")
        check_invariant_1(run)
        assert [t.id for t in run.tasks] == ["task_group", "get_email_task"]
        await run.session.run(user_input="ann@example.com")
        check_invariant_1(run)
        assert [t.id for t in run.tasks] == ["task_group", "get_phone_number_task"]
        finished = tool_finished(run, "collect_contact")
        await run.session.run(user_input="+15550100199")
        check_invariant_1(run)
        await asyncio.wait_for(finished, 10)
        check_invariant_1(run)
        assert run.tasks == ()
        assert (run.context.email, run.context.phone) == ("ann@example.com", "+15550100199")
        await run.session.run(user_input="bye")
        check_invariant_1(run)
        assert run.state == "Done"


async def test_an_interruption_inside_the_task_leaves_the_flow_consistent() -> None:
    async with flow.session(llm=ScriptedLLM(policy)) as run:
        await run.session.run(user_input="email please")
        assert [t.id for t in run.tasks] == ["get_email_task"]
        run.session.interrupt(force=True)
        await run.session.run(user_input="sorry, what?")
        check_invariant_1(run)
        assert run.state == "Desk" and run.log == []
        # the task goes on after the interruption and completes normally
        finished = tool_finished(run, "collect_email")
        await run.session.run(user_input="ann@example.com")
        check_invariant_1(run)
        await asyncio.wait_for(finished, 10)
        assert run.tasks == () and run.context.email == "ann@example.com"


async def test_the_session_closing_inside_the_task_ends_the_run_cleanly() -> None:
    llm = ScriptedLLM(policy)
    async with AgentSession[Caller]() as session:
        run = await flow.start(session, llm=llm, wait_opening=True)
        await session.run(user_input="email please")
        assert [t.id for t in run.tasks] == ["get_email_task"]
        await asyncio.wait_for(session.aclose(), 10)
    assert run.closed and run.tasks == () and not run.in_transition
    assert run.state == "Desk" and run.log == [] and run.context.email is None
    with contextlib.suppress(Exception):
        await asyncio.sleep(0)


async def take_contact(caller: Caller) -> None:
    """Desk's collect_contact, shared by a transition body and a hook below."""
    group = TaskGroup()
    group.add(GetEmailTask, id="email", description="Collect the email address")
    group.add(GetPhoneNumberTask, id="phone", description="Collect the phone number")
    results = (await group).task_results
    caller.email, caller.phone = results["email"].email_address, results["phone"].phone_number


class Lobby(State[Caller]):
    """Sends the caller to the contact form."""

    instructions = "Lobby."

    @transition(to="Form")
    async def fill_form(self) -> None:
        """Call when the caller wants to leave their contact details."""

    @transition(to="Done")
    async def register(self, ctx: RunContext[Caller]) -> None:
        """Call when the caller wants to register: takes their email and phone first."""
        await take_contact(ctx.userdata)


class Form(State[Caller]):
    """Takes the email and phone in its on_enter (a TaskGroup), then moves on by code."""

    instructions = "Form."

    async def on_enter(self) -> None:
        await take_contact(self.context)
        await self.run.go("form_filled")

    @transition(to="Done", llm=False)
    async def form_filled(self) -> None:
        """Taken by on_enter once the form's tasks are done."""


lobby_flow = Flow("lobby", context=Caller, initial=Lobby, states=[Lobby, Form, Done],
                  final=[Done])


def lobby_policy(turn: Turn) -> Any:
    if turn.agent_id == "Lobby" and not turn.answering_tool:
        if turn.last_user_text == "form":
            return call("fill_form")
        if turn.last_user_text == "register":
            return call("register")
    return policy(turn)


@pytest.mark.parametrize("opening", ["form", "register"])
async def test_a_task_group_in_on_enter_or_a_body_then_the_move(opening: str) -> None:
    """A TaskGroup awaited in a hook (then run.go()) or in a transition body: the flow
    stays in its state while the tasks talk, invariant 1 holds between every turn, and
    the move follows once the group is done."""
    async with lobby_flow.session(llm=ScriptedLLM(lobby_policy)) as run:
        for line, tasks in [(opening, ["task_group", "get_email_task"]),
                            ("ann@example.com", ["task_group", "get_phone_number_task"]),
                            ("+15550100199", [])]:
            await run.session.run(user_input=line)
            await settle(run)
            check_invariant_1(run)
            assert [t.id for t in run.tasks] == tasks
        assert run.state == "Done" == run.session.current_agent.id
        expected = ["fill_form", "form_filled"] if opening == "form" else ["register"]
        assert [r.trigger for r in run.log] == expected
        assert (run.context.email, run.context.phone) == ("ann@example.com", "+15550100199")
        await run.session.run(user_input="bye")
        check_invariant_1(run)


class Verifier(AgentTask[bool]):
    """A hand-written LiveKit AgentTask[bool], awaited from a transition body."""

    def __init__(self) -> None:
        super().__init__(instructions="Ask for the PIN.")

    @function_tool
    async def pin_given(self, pin: str) -> None:
        """Call with the PIN the caller gave."""
        self.complete(pin == "1234")


class Gate(State[Caller]):
    """Lets verified callers through."""

    instructions = "Gate."

    @transition(to="Inside")
    async def enter(self, ctx: RunContext[Caller]) -> None:
        """Call when the caller wants in; verifies them first."""
        if not await Verifier():
            from handoff import TransitionRefused

            raise TransitionRefused("the PIN was wrong")


class Inside(State[Caller]):
    """Inside."""

    instructions = "Inside."


gate_flow = Flow("gate", context=Caller, initial=Gate, states=[Gate, Inside], final=[Inside])


def gate_policy(turn: Turn) -> Any:
    if turn.agent_id == "Gate" and turn.last_user_text == "let me in" and not turn.answering_tool:
        return call("enter")
    if turn.agent_id == "verifier":
        if turn.last_user_text.isdigit() and not turn.answering_tool:
            return call("pin_given", pin=turn.last_user_text)
        return "Your PIN?"
    return f"{turn.agent_id} here."


async def pass_the_gate(model: Any) -> None:
    """The gate call on ``model`` (a ScriptedLLM or a realtime model playing gate_policy):
    the task awaited in the body runs, and the move happens once it completes."""
    async with gate_flow.session(llm=model) as run:
        await run.session.run(user_input="let me in")
        assert [t.id for t in run.tasks] == ["verifier"] and run.state == "Gate"
        finished = tool_finished(run, "enter")
        await run.session.run(user_input="1234")
        await asyncio.wait_for(finished, 10)
        await run.session.run(user_input="hello?")
        check_invariant_1(run)
        assert run.state == "Inside" and [r.trigger for r in run.log] == ["enter"]


async def test_a_task_awaited_in_a_transition_body_gates_the_move() -> None:
    await pass_the_gate(ScriptedLLM(gate_policy))


class QuickDesk(Desk):
    """A desk whose tools may run 50 ms, not counting the time a task talks."""

    name = "Desk"
    tool_timeout = 0.05


quick_flow = Flow("quick", context=Caller, initial=QuickDesk, states=[QuickDesk, Done], final=[Done])


async def test_a_tool_timeout_stops_while_its_task_talks_with_the_caller() -> None:
    """The tool awaiting GetEmailTask is not hung while the caller takes their time."""
    async with quick_flow.session(llm=ScriptedLLM(policy)) as run:
        await run.session.run(user_input="email please")
        assert [t.id for t in run.tasks] == ["get_email_task"]
        await asyncio.sleep(0.2)  # four timeouts' worth of the caller thinking
        finished = tool_finished(run, "collect_email")
        await run.session.run(user_input="ann@example.com")
        await asyncio.wait_for(finished, 10)
        assert run.context.email == "ann@example.com" and run.context.task_error is None
        check_invariant_1(run)


def test_the_tasks_a_state_awaits_are_read_from_its_code() -> None:
    """Diagrams list them: a global name, a module's attribute, a lambda inside a tool; a
    state awaiting nothing lists nothing; a subclass lists what it inherits."""
    class Front(State[Caller]):
        """Takes an address."""

        instructions = "x"

        @function_tool
        async def collect_address(self, ctx: RunContext[Caller]) -> str:
            """Collect the address."""
            result = await workflows.GetAddressTask()
            return str(result)

    class Back(Front):
        """Also takes a phone number."""

        async def on_enter(self) -> None:
            make = lambda: GetPhoneNumberTask()  # noqa: E731 — a lambda like TaskGroup.add's
            await make()

    assert Desk.awaited_tasks() == ("GetEmailTask", "GetPhoneNumberTask", "TaskGroup")
    assert Front.awaited_tasks() == ("GetAddressTask",)
    assert Back.awaited_tasks() == ("GetAddressTask", "GetPhoneNumberTask")
    assert Done.awaited_tasks() == ()
