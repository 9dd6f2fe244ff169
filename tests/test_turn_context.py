"""Per-turn context and the class prompt.

A State's ``before_reply`` runs before every request its agent makes to the model, in text
mode (``session.run(user_input=...)``, where LiveKit's ``on_user_turn_completed`` never runs)
and in voice mode (a caller's spoken turn, through Silero VAD and the real audio path); its
text reaches that request only. A State's own prompt is readable where the instructions are
composed (``self.prompt``).
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from livekit.agents import AgentSession, llm

from handoff import Context, Flow, RunContext, State, function_tool, transition
from handoff.testing import ScriptedLLM, Turn, call
from handoff.testing.audio import CallerAudioInput, EspeakTTS, RealtimeAudioOutput, espeak_available
from handoff.turn_context import TURN_CONTEXT_ID

BOOKINGS: dict[str, list[str]] = {}
"""The backend the hook reads: changed by the test between turns."""


class Booking(Context):
    caller: str | None = None


class Desk(State[Booking]):
    """Takes the caller's name."""

    instructions = "You take bookings."

    @transition(to="Clerk")
    async def named(self, ctx: RunContext[Booking], name: str) -> None:
        """Call once the caller said their name."""
        ctx.userdata.caller = name


class Clerk(State[Booking]):
    """Books, addressing the caller by name."""

    instructions = "You book rooms."

    def compose_instructions(self, context: Booking, note: str | None = None) -> str:
        return f"{self.prompt} Address the caller as {context.caller}."


class Peeking(State[Booking]):
    """Reads LiveKit's instructions too early."""

    instructions = "You peek."

    def compose_instructions(self, context: Booking, note: str | None = None) -> str:
        return f"{self.instructions} (too early)"


flow = Flow("prompts", context=Booking, initial=Desk, states=[Desk, Clerk], final=[Clerk])


async def test_the_class_prompt_is_readable_inside_compose_instructions() -> None:
    model = ScriptedLLM(["Hello.", call("named", name="Ada"), "Hello Ada."])
    async with flow.session(llm=model) as run:
        await run.session.run(user_input="I'm Ada")
        assert run.state == "Clerk"
        assert model.turns[-1].instructions == "You book rooms. Address the caller as Ada."
        assert run.agent is not None and run.agent.instructions == model.turns[-1].instructions


def test_instructions_before_the_agent_exists_name_the_prompt() -> None:
    peeking = Flow("peek", context=Booking, initial=Peeking, states=[Peeking], final=[Peeking])
    with peeking.new_run(llm=ScriptedLLM([])) as run, pytest.raises(
            AttributeError, match=r"inside compose_instructions\(\) the state's prompt is self\.prompt"):
        run.make_agent("Peeking")


class Diary(Context):
    caller: str = "Ann"
    fetched: int = 0
    hook_fails: bool = False


class Planner(State[Diary]):
    """Plans the caller's week with their bookings, fresh on every turn."""

    instructions = "You plan the caller's week."

    async def before_reply(self, chat_ctx: llm.ChatContext) -> str | None:
        if self.context.hook_fails:
            self.context.hook_fails = False
            raise RuntimeError("the diary service is down")
        self.context.fetched += 1
        booked = ", ".join(BOOKINGS.get(self.context.caller, [])) or "nothing"
        return f"The caller's bookings right now: {booked}."

    @function_tool
    async def cancel(self, ctx: RunContext[Diary], what: str) -> str:
        """Cancel one of the caller's bookings."""
        BOOKINGS[ctx.userdata.caller].remove(what)
        return f"cancelled {what}"


diary = Flow("diary", context=Diary, initial=Planner, states=[Planner], final=[Planner])


def _turn_context(turn: Turn) -> list[str]:
    return [item.text_content or "" for item in turn.chat_ctx.items
            if item.type == "message" and item.id == TURN_CONTEXT_ID]


async def test_before_reply_runs_before_every_request_in_text_mode() -> None:
    BOOKINGS["Ann"] = ["dentist on Monday", "gym on Friday"]
    model = ScriptedLLM(["Hello Ann.", "You have two bookings.",
                         call("cancel", what="gym on Friday"), "Done, the gym is cancelled.",
                         "Only the dentist now."])
    async with diary.session(llm=model) as run:
        await run.session.run(user_input="what have I got?")
        await run.session.run(user_input="cancel the gym")
        BOOKINGS["Ann"].append("haircut on Tuesday")  # booked elsewhere, between turns
        await run.session.run(user_input="and now?")
        agent = run.agent
        assert agent is not None
        stored = [i for i in agent.chat_ctx.items if i.id == TURN_CONTEXT_ID]
    seen = [_turn_context(t) for t in model.turns]
    assert seen == [
        ["The caller's bookings right now: dentist on Monday, gym on Friday."],  # opening
        ["The caller's bookings right now: dentist on Monday, gym on Friday."],
        ["The caller's bookings right now: dentist on Monday, gym on Friday."],
        ["The caller's bookings right now: dentist on Monday."],  # after the tool, same turn
        ["The caller's bookings right now: dentist on Monday, haircut on Tuesday."],
    ]
    assert run.context.fetched == 5 and stored == []
    assert {t.instructions for t in model.turns} == {
        next(iter(model.turns)).instructions}  # the instructions themselves never change


async def test_a_before_reply_that_raises_counts_and_the_model_still_answers() -> None:
    BOOKINGS["Ann"] = []
    model = ScriptedLLM(["Hello.", "Sorry, I cannot see your diary just now.", "Nothing booked."])
    async with diary.session(llm=model) as run:
        run.context.hook_fails = True
        result = await run.session.run(user_input="what have I got?")
        result.expect.next_event(type="message")
        assert run.consecutive_failures == 1 and _turn_context(model.turns[-1]) == []
        await run.session.run(user_input="again?")
        assert _turn_context(model.turns[-1]) == ["The caller's bookings right now: nothing."]


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")
async def test_before_reply_runs_before_a_spoken_turn() -> None:
    """Voice mode: the caller's speech ends a user turn through Silero VAD (no STT: LiveKit
    commits it with no transcript) and the reply's request has the fresh bookings."""
    from livekit.plugins import silero

    BOOKINGS["Ann"] = ["dentist on Monday"]
    answered = asyncio.Event()

    def policy(turn: Turn) -> str:
        if len(turn.messages()) > 1:  # after the opening: the spoken turn's request
            answered.set()
            return "You have the dentist."
        return "Hello Ann."

    session: AgentSession[Diary] = AgentSession(
        vad=silero.VAD.load(), tts=EspeakTTS(words_per_minute=260),
        turn_handling={"turn_detection": "vad"}, aec_warmup_duration=None)
    caller, speaker = CallerAudioInput(), RealtimeAudioOutput()
    session.input.audio, session.output.audio = caller, speaker
    model = ScriptedLLM(policy)
    try:
        run = await asyncio.wait_for(diary.start(session, llm=model, wait_opening=True), 30)
        BOOKINGS["Ann"].append("gym on Friday")
        said = await caller.say("What have I got this week?")
        await asyncio.wait_for(said.finished.wait(), 30)
        await asyncio.wait_for(answered.wait(), 30)
        assert _turn_context(model.turns[-1]) == [
            "The caller's bookings right now: dentist on Monday, gym on Friday."]
        assert run.context.fetched == len(model.turns)
    finally:
        caller.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.aclose(), 15)
        await speaker.aclose()


