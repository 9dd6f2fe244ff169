"""The scripted realtime model keeps LiveKit's realtime event contract (as the OpenAI
plugin does, ``livekit/agents/llm/_realtime/openai.py``): every stream closed, every
``modalities`` resolved, its own chat context, interruptions and truncation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from livekit.agents import llm

from handoff.testing import Reply, ScriptedRealtimeModel, call, fail


async def _drain(event: llm.GenerationCreatedEvent) -> tuple[list[str], list[Any], list[str]]:
    """Read a generation as LiveKit does: texts, audio frame counts per message, calls."""
    texts: list[str] = []
    modalities: list[Any] = []
    async for message in event.message_stream:
        texts.append("".join([piece async for piece in message.text_stream]))
        frames = [frame async for frame in message.audio_stream]
        modalities.append((await message.modalities, len(frames)))
    calls = [f"{c.name}{c.arguments}" async for c in event.function_stream]
    return texts, modalities, calls


async def test_a_reply_streams_text_and_calls_then_closes_everything() -> None:
    model = ScriptedRealtimeModel([Reply(text="One moment please", calls=(call("look", q=1),))])
    session = model.session()
    seen: list[llm.GenerationCreatedEvent] = []
    session.on("generation_created", seen.append)
    event = await session.generate_reply(instructions="be brief")
    assert event.user_initiated and seen == [event]
    texts, modalities, calls = await asyncio.wait_for(_drain(event), 5)
    assert texts == ["One moment please"]
    assert modalities == [(["text"], 0)]  # text-only model: no audio frames, modality resolved
    assert calls == ['look{"q": 1}']
    # the session keeps its own copy: its reply and its call, for LiveKit to build updates on
    items = session.chat_ctx.items
    assert [i.type for i in items] == ["message", "function_call"]
    assert items[0].text_content == "One moment please"
    assert model.turns[0].instructions == "be brief"
    await session.aclose()


async def test_audio_modality_sends_synthetic_frames_and_resolves_both_modalities() -> None:
    model = ScriptedRealtimeModel(["Hello there caller"], modalities=["audio"])
    assert model.capabilities.audio_output
    event = await model.session().generate_reply()
    _, modalities, _ = await asyncio.wait_for(_drain(event), 5)
    assert modalities == [(["audio", "text"], 1)]


async def test_interrupt_mid_generation_closes_the_streams_and_truncate_keeps_what_was_heard() -> None:
    hold = asyncio.Event()
    model = ScriptedRealtimeModel([Reply(text="I will now read you the terms",
                                         calls=(call("x"),), pause_between=hold.wait)])
    session = model.session()
    event = await session.generate_reply()
    message = await event.message_stream.__anext__()
    assert "".join([p async for p in message.text_stream]) == "I will now read you the terms"
    session.interrupt()  # held between the text and the calls
    assert await asyncio.wait_for(message.modalities, 5) == ["text"]
    assert [c async for c in event.function_stream] == []  # closed, no call made
    assert [m async for m in event.message_stream] == []
    assert session.interruptions == 1
    session.truncate(message_id=message.message_id, modalities=["text"], audio_end_ms=900,
                     audio_transcript="I will now")
    assert session.chat_ctx.items[-1].text_content == "I will now"
    assert session.truncations[0].transcript == "I will now"
    session.interrupt()  # nothing in progress: a no-op, as OpenAI's
    assert session.interruptions == 1


async def test_a_cancelled_generate_reply_never_starts_the_response() -> None:
    hold = asyncio.Event()
    model = ScriptedRealtimeModel([Reply(text="late", pause=hold.wait)])
    session = model.session()
    seen: list[Any] = []
    session.on("generation_created", seen.append)
    pending = session.generate_reply()
    await asyncio.sleep(0)
    pending.cancel()  # what LiveKit does when the speech is interrupted before the reply
    hold.set()
    await session.aclose()
    assert seen == [] and session.chat_ctx.items == []


async def test_a_provider_failure_fails_the_future_and_reports_an_error() -> None:
    model = ScriptedRealtimeModel([fail("boom")])
    session = model.session()
    errors: list[llm.RealtimeModelError] = []
    session.on("error", errors.append)
    with pytest.raises(llm.RealtimeError, match="boom"):
        await session.generate_reply()
    assert len(errors) == 1 and errors[0].recoverable


async def test_an_exhausted_script_says_so() -> None:
    session = ScriptedRealtimeModel([]).session()
    with pytest.raises(llm.RealtimeError, match="no reply left"):
        await session.generate_reply()


async def test_auto_tool_reply_answers_tool_outputs_without_generate_reply() -> None:
    model = ScriptedRealtimeModel([call("look"), "Found it."], auto_tool_reply=True)
    session = model.session()
    seen: list[llm.GenerationCreatedEvent] = []
    session.on("generation_created", seen.append)
    event = await session.generate_reply()
    _, _, calls = await _drain(event)
    made = session.chat_ctx.items[-1]
    assert isinstance(made, llm.FunctionCall) and calls == ["look{}"]
    updated = session.chat_ctx
    updated.items.append(llm.FunctionCallOutput(call_id=made.call_id, name="look", output="ok",
                                                is_error=False))
    await session.update_chat_ctx(updated)
    await asyncio.wait_for(_until(lambda: len(seen) == 2), 5)
    assert not seen[1].user_initiated  # the model's own generation, not a generate_reply
    texts, _, _ = await _drain(seen[1])
    assert texts == ["Found it."]
    assert model.turns[1].answering_tool


async def test_update_calls_set_what_the_next_request_sees() -> None:
    model = ScriptedRealtimeModel(["ok"])
    session = model.session()
    await session.update_instructions("You are billing.")
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="system", content="dropped: instructions are separate")
    ctx.add_message(role="user", content="hi")
    await session.update_chat_ctx(ctx)

    @llm.function_tool
    async def lookup(q: str) -> str:
        """Look something up."""
        return q

    await session.update_tools([lookup])
    session.update_options(tool_choice="auto")
    await _drain(await session.generate_reply())
    turn = model.turns[0]
    assert turn.instructions == "You are billing."
    assert turn.tool_names == ("lookup",) and session.tool_choice == "auto"
    assert turn.messages() == [("user", "hi")]


async def test_a_closed_session_refuses_new_replies() -> None:
    session = ScriptedRealtimeModel(["x"]).session()
    await session.aclose()
    with pytest.raises(llm.RealtimeError, match="closed"):
        await session.generate_reply()


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0)
