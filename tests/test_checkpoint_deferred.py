"""The Checkpointer's captures leave the scrubbing and encoding of their log entries and
messages to the writer (:meth:`Checkpoint.settle`, in the writer's thread with SQLite):
what is written is still the checkpoint of the moment it was captured, byte for byte,
however the Context, its sensitive values and the history change before the write."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from livekit.agents import AgentSession, llm

from handoff.persistence import Checkpoint, Checkpointer, MemoryStore, SQLiteStore
from handoff.persistence.checkpoint import CaptureCache, Message, capture, capture_changed
from handoff.records import TransitionRecord
from handoff.redaction import Redactor
from handoff.telemetry import HandoffMetrics
from handoff.testing import ScriptedLLM, call

from .test_checkpoint_capture import PIN, Card, Notes, card_flow, notes_flow, stored


async def test_a_deferred_capture_settled_later_is_the_capture_of_its_moment() -> None:
    script = ScriptedLLM(["Hello.", call("noted", topic=f"my pin is {PIN}"), "Noted.",
                          call("again", pin=PIN), "Stored.", "Fine."])
    cache = CaptureCache()
    async with AgentSession[Card]() as session:
        run = await card_flow.start(session, llm=script, wait_opening=True)
        await session.run(user_input=f"pin {PIN}")
        deferred = capture_changed(run, "c", 1, cache=cache, defer=True)
        assert deferred is not None and deferred.deferred is not None
        assert deferred.log == [] and deferred.history == []  # nothing made on the loop
        at_once = replace(capture(run, "c", 1), saved_at=deferred.saved_at)
        fingerprint = deferred.fingerprint()
        assert fingerprint == at_once.fingerprint()  # messages compare as stored
        # the call goes on before the writer gets to it: the PIN becomes sensitive
        await session.run(user_input=f"again, pin {PIN}")
        await session.run(user_input="fine")
        later = capture_changed(run, "c", 2, cache=cache, defer=True)
        assert later is not None
        assert deferred.to_json() == at_once.to_json()
        assert deferred.deferred is None and deferred.fingerprint() == fingerprint
        assert PIN in str(deferred.history) and PIN in str(deferred.log)  # not yet sensitive
        fresh = replace(capture(run, "c", 2), saved_at=later.saved_at)
    assert later.to_json() == fresh.to_json()
    assert PIN not in str(later.to_dict()["history"]) + str(later.log)


class GatedStore(SQLiteStore):
    """A SQLite store whose writes wait for ``gate``."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.gate.set()

    def _save(self, checkpoint: Checkpoint) -> bool:
        self.gate.wait(10)
        return super()._save(checkpoint)


async def _listening(session: AgentSession[Any]) -> None:
    """Until the agent listens again (its turn's end, which the Checkpointer captures)."""
    heard = asyncio.Event()

    def on_state(_: Any) -> None:
        if session.agent_state == "listening":
            heard.set()

    session.on("agent_state_changed", on_state)
    try:
        if session.agent_state != "listening":
            await asyncio.wait_for(heard.wait(), 10)
    finally:
        session.off("agent_state_changed", on_state)


async def test_the_writers_thread_stores_the_capture_of_its_moment(
        metrics: HandoffMetrics, tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "cp.db")
    checkpointer = Checkpointer(store, metrics=metrics)
    assert checkpointer.threaded
    async with AgentSession[Card]() as session:
        run = await card_flow.start(session, llm=ScriptedLLM(["Hello.", "Noted."]),
                                    wait_opening=True)
        checkpointer.track(run, "moment")
        await session.run(user_input=f"my pin is {PIN}")
        await _listening(session)
        assert await checkpointer.flush(10)
        store.gate.clear()  # the writer holds what it takes next until the test says
        run.context.topic = "cards"
        assert checkpointer.checkpoint(run)
        expected = capture(run, "moment", 0)
        # after the capture, before the write: a value becomes sensitive, a line is added
        run.context.pin = PIN
        session.history.add_message(role="user", content=f"it is {PIN}")
        run.context.topic = "other"
        store.gate.set()
        assert await checkpointer.flush(10)
        written = await store.load("moment")
    await checkpointer.aclose()
    assert written is not None
    assert written.to_json() == replace(expected, seq=written.seq,
                                        saved_at=written.saved_at).to_json()
    assert PIN in str(written.history) and written.context["topic"] == "cards"


async def test_an_unchanged_deferred_capture_is_not_queued_again(
        metrics: HandoffMetrics) -> None:
    """The Context of ``Notes`` holds a list, so every capture dumps it afresh; the
    fingerprint of a deferred capture still tells an identical one from a new one."""
    checkpointer = Checkpointer(MemoryStore(), metrics=metrics)
    async with AgentSession[Notes]() as session:
        run = await notes_flow.start(session, llm=ScriptedLLM(["Hi.", "Noted."]),
                                     wait_opening=True)
        checkpointer.track(run, "same")
        taken = checkpointer.taken
        assert not checkpointer.checkpoint(run)  # the same as the one track took
        run.context.lines.append("in place")
        assert checkpointer.checkpoint(run)
        assert not checkpointer.checkpoint(run)
        session.history.add_message(role="user", content="a line")
        assert checkpointer.checkpoint(run)
        assert checkpointer.taken == taken + 2
        assert await checkpointer.flush(5)
        written = await checkpointer.store.load("same")
        assert written is not None and stored(written) == stored(capture(run, "same", written.seq))
    await checkpointer.aclose()


roles = st.sampled_from(["user", "assistant"])
words = st.sampled_from(["", "abc", "abcd", "PIN-123", "x PIN-123 y", "[redacted]", "red"])
value_lists = st.lists(st.sampled_from(["PIN-123", "abc", "redacted]"]), unique=True,
                       max_size=2).map(lambda vs: sorted(vs, key=len, reverse=True))


@given(a=st.tuples(roles, words, value_lists), b=st.tuples(roles, words, value_lists))
def test_messages_are_equal_exactly_when_their_stored_forms_are(
        a: tuple[str, str, list[str]], b: tuple[str, str, list[str]]) -> None:
    redactor = Redactor(Card())
    one, two = Message(*a[:2], redactor, a[2]), Message(*b[:2], redactor, b[2])
    forms = (Message(*a[:2], redactor, a[2]).form(), Message(*b[:2], redactor, b[2]).form())
    assert (one == two) == (forms[0] == forms[1]) == (two == forms[0]) == (forms[1] == one)


@given(text=st.text(max_size=12).filter(lambda t: "<" not in t))
def test_an_assistant_text_without_a_tag_is_its_raw_text(text: str) -> None:
    """What the capture relies on to read LiveKit's raw text on the loop: its expressive
    markup is tags, so a text without ``<`` has none to strip."""
    message = llm.ChatMessage(role="assistant", content=[text])
    assert message.text_content == message.raw_text_content


async def test_an_assistant_line_with_expressive_markup_is_stored_without_it() -> None:
    cache = CaptureCache()
    async with AgentSession[Card]() as session:
        run = await card_flow.start(session, llm=ScriptedLLM(["Hello."]), wait_opening=True)
        capture(run, "c", 1, cache=cache)
        said = '<expr type="emotion" label="happy"/> Glad to help. 1 < 2'
        session.history.add_message(role="assistant", content=said)
        session.history.add_message(role="assistant", content='<expr type="pause"/>')
        cp = capture(run, "c", 2, cache=cache)
        fresh = capture(run, "c", 2)
    texts = [m["text"] for m in cp.history]
    assert texts[-1] == llm.ChatMessage(role="assistant", content=[said]).text_content
    assert "expr" not in texts[-1] and "1 < 2" in texts[-1]
    assert stored(cp) == stored(fresh)


def test_a_logged_argument_changed_in_place_after_the_capture_is_stored_as_it_was() -> None:
    """A list or dict an LLM sent may be kept (in the Context) and changed in place after
    the move: such an entry is made and encoded when captured, not when written."""
    run = card_flow.new_run()
    sent: dict[str, Any] = {"topic": ["billing"], "note": "plain"}
    run.restore("Ask", log=[TransitionRecord("Ask", "Tell", "noted", sent, 1.0, "llm"),
                            TransitionRecord("Tell", "Ask", "again", {"pin": ""}, 2.0, "llm")])
    deferred = capture_changed(run, "c", 1, cache=CaptureCache(), defer=True)
    assert deferred is not None and deferred.deferred is not None
    expected = replace(capture(run, "c", 1), saved_at=deferred.saved_at).to_json()
    sent["topic"].append("changed later")
    assert deferred.to_json() == expected
    assert Checkpoint.from_json(deferred.to_json()).log[0]["arguments"] == {
        "topic": ["billing"], "note": "plain"}
