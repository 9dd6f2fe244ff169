"""A checkpoint captured with the call's CaptureCache is the one captured afresh.

The Checkpointer reuses what the previous capture of a call made (the scrubbed log
entries and messages, the sealed section), so that a capture costs what changed, not
the length of the call. What it stores must not change: these tests capture both ways
after every step of a real call, including the step where a value the caller said
earlier becomes sensitive, so every old entry has to be scrubbed again.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from livekit.agents import AgentSession, RunContext, llm
from pydantic import Field

from handoff import Context, Flow, State, transition
from handoff.persistence.checkpoint import (
    CaptureCache,
    Checkpoint,
    capture,
    capture_changed,
    encode_entry,
)
from handoff.testing import ScriptedLLM, call

PIN = "ZEBRA-7731"


class Card(Context):
    topic: str | None = None
    pin: str | None = Field(None, json_schema_extra={"pii": True})


class Ask(State[Card]):
    """Asks."""

    instructions = "Ask."

    @transition(to="Tell")
    async def noted(self, ctx: RunContext[Card], topic: str) -> None:
        """The caller said what it is about."""
        ctx.userdata.topic = topic


class Tell(State[Card]):
    """Tells."""

    instructions = "Tell."

    @transition(to="Ask")
    async def again(self, ctx: RunContext[Card], pin: str = "") -> None:
        """Back to asking; stores the PIN if the caller gave one."""
        if pin:
            ctx.userdata.pin = pin


card_flow = Flow("card", context=Card, initial=Ask, states=[Ask, Tell])


def stored(cp: Checkpoint) -> dict[str, Any]:
    data = cp.to_dict()
    del data["saved_at"]
    return data


async def test_cached_capture_stores_what_a_fresh_one_does() -> None:
    script = ScriptedLLM([
        "Hello.",
        call("noted", topic=f"my pin is {PIN}"), "Noted.",  # said before it is sensitive
        call("again"), "Again.",
        call("noted", topic="billing"), "Noted.",
        call("again", pin=PIN), "Stored.",  # now it is: every old entry is scrubbed again
        call("noted", topic="more"), "Noted.",
    ])
    cache = CaptureCache()
    seen: list[dict[str, Any]] = []
    async with AgentSession[Card]() as session:
        run = await card_flow.start(session, llm=script, wait_opening=True)
        for line in (f"pin {PIN}", "again", "billing", f"pin {PIN} again", "more"):
            await session.run(user_input=line)
            cached = capture(run, "c", 1, cache=cache)
            fresh = capture(run, "c", 1)
            assert stored(cached) == stored(fresh)
            seen.append(stored(cached))
        before = capture(run, "c", 2, cache=cache)
        after = capture(run, "c", 3, cache=cache)
    assert len(run.log) == 5
    assert PIN not in str(seen[-1]["log"]) and PIN not in str(seen[-1]["history"])
    assert PIN in str(seen[0]["log"])  # not sensitive yet when that checkpoint was taken
    # nothing changed between the last two: the entries are the same objects, not remade
    assert all(a is b for a, b in zip(before.log, after.log, strict=True))
    assert all(a is b for a, b in zip(before.history, after.history, strict=True))


async def test_a_restored_log_is_captured_afresh() -> None:
    """A run whose log was replaced whole (a restore) gets entries of the new records."""
    cache = CaptureCache()
    first = card_flow.new_run()
    async with AgentSession[Card]() as session:
        run = await card_flow.start(session, llm=ScriptedLLM(["Hi.", "Ok.", "Ok."]),
                                    wait_opening=True)
        await run.go("noted", topic="one")
        capture(run, "c", 1, cache=cache)
        other = capture(run, "c", 2)
    first.restore("Ask", log=[replace(r, trigger="again", source="Tell", target="Ask")
                              for r in run.log])
    assert [e["trigger"] for e in capture(first, "c", 3, cache=cache).log] == ["again"]
    assert [e["trigger"] for e in other.log] == ["noted"]


texts = st.text(st.characters(blacklist_categories=()), max_size=6)  # lone surrogates too
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=8)
log_entries = st.fixed_dictionaries({
    "source": st.text(max_size=5), "target": st.text(max_size=5), "trigger": st.text(max_size=5),
    "arguments": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    "at": st.floats(), "by": st.sampled_from(["llm", "code"])})


@given(log=st.lists(log_entries, max_size=4), context=st.dictionaries(
    st.text(max_size=5), json_values, max_size=3), text=texts)
def test_a_log_encoded_ahead_is_stored_as_the_whole_document_would_be(
        log: list[dict[str, Any]], context: dict[str, Any], text: str) -> None:
    """Not finite numbers and lone surrogates anywhere included (to_json's fallbacks)."""
    whole = Checkpoint("c", "f", "1", "S", 1, context, log=log,
                       history=[{"role": "user", "text": text}])
    encoded = [encode_entry(e) for e in log]
    if None in encoded:  # capture leaves such a log to the fallbacks
        return
    ahead = replace(whole, encoded_log=[e for e in encoded if e is not None])
    assert ahead.to_json() == whole.to_json()
    assert Checkpoint.from_json(ahead.to_json()).to_dict() == Checkpoint.from_json(
        whole.to_json()).to_dict()


def test_the_encoded_log_is_what_is_written() -> None:
    """The writer uses the entries as encoded, without encoding the log again."""
    cp = Checkpoint("c", "f", "1", "S", 1, {}, log=[{"source": "A"}],
                    encoded_log=['{"source":"B"}'])
    assert '"log":[{"source":"B"}]' in cp.to_json()
    assert replace(cp, encoded_log=None).to_json() == cp.to_json().replace('"B"', '"A"')


async def test_history_read_since_the_last_capture_is_the_whole_history_read_afresh() -> None:
    """The cache reads only the items added since its last capture; an item inserted
    before those (LiveKit inserts by creation time), a history cut in place or one
    shorter than the limit still give what a fresh capture gives."""
    script = ScriptedLLM(["Hello.", *(f"Reply {i}." for i in range(6))])
    cache = CaptureCache()
    async with AgentSession[Card]() as session:
        run = await card_flow.start(session, llm=script, wait_opening=True)

        def same(limit: int) -> list[dict[str, str]]:
            cached = capture(run, "c", 1, cache=cache, history_limit=limit)
            fresh = capture(run, "c", 1, history_limit=limit)
            assert stored(cached) == stored(fresh)
            return cached.history

        assert same(3) == [{"role": "assistant", "text": "Hello."}]
        for i in range(3):
            await session.run(user_input=f"line {i}")
            assert same(3)[-1] == {"role": "assistant", "text": f"Reply {i}."}
        items = session.history.items
        early = items[-1].created_at - 1e-6  # before the last reply: not at the end
        session.history.insert(llm.ChatMessage(role="user", content=["inserted late"],
                                               created_at=early))
        assert session.history.items[-2].text_content == "inserted late"
        assert [m["text"] for m in same(3)] == ["line 2", "inserted late", "Reply 2."]
        del items[-3:]  # cut in place: same list, shorter
        assert [m["text"] for m in same(3)] == ["Reply 0.", "line 1", "Reply 1."]
        assert len(same(50)) == len([i for i in items if i.type == "message"])
        await session.run(user_input="after the cut")
        assert [m["text"] for m in same(2)] == ["after the cut", "Reply 3."]


@given(log=st.lists(log_entries, max_size=3), history=st.lists(st.fixed_dictionaries({
    "role": st.sampled_from(["user", "assistant"]), "text": texts}), max_size=3))
def test_a_history_encoded_ahead_is_stored_as_the_whole_document_would_be(
        log: list[dict[str, Any]], history: list[dict[str, str]]) -> None:
    """Lone surrogates in a message and a log that needs the fallbacks included."""
    whole = Checkpoint("c", "f", "1", "S", 1, {"topic": "x"}, log=log, history=history)
    ahead = replace(whole, encoded_history=[encode_entry(m) or "" for m in history],
                    encoded_log=None if None in (encoded := [encode_entry(e) for e in log])
                    else [e or "" for e in encoded])
    assert ahead.to_json() == whole.to_json()


async def test_a_captured_history_is_encoded_once_and_as_stored() -> None:
    """The messages a capture reads are encoded when first read; a resumed call's
    earlier messages in front are left to the write."""
    script = ScriptedLLM(["Hello.", "One.", "Two."])
    cache = CaptureCache()
    async with AgentSession[Card]() as session:
        run = await card_flow.start(session, llm=script, wait_opening=True)
        await session.run(user_input="first")
        one = capture(run, "c", 1, cache=cache)
        await session.run(user_input="second")
        two = capture(run, "c", 2, cache=cache)
        earlier = capture(run, "c", 3, cache=cache, earlier=[{"role": "user", "text": "old"}])
    assert one.encoded_history is not None and two.encoded_history is not None
    assert one.encoded_history == two.encoded_history[:len(one.encoded_history)]
    assert all(a is b for a, b in zip(one.encoded_history, two.encoded_history, strict=False))
    assert earlier.encoded_history is None and earlier.history[0]["text"] == "old"
    for cp in (one, two, earlier):
        assert cp.to_json() == replace(cp, encoded_history=None, encoded_log=None).to_json()


class Notes(Context):
    lines: list[str] = []
    count: int = 0


class Only(State[Notes]):
    """Listens."""

    instructions = "Listen."


notes_flow = Flow("notes", context=Notes, initial=Only, states=[Only])


async def test_a_capture_is_skipped_only_when_it_would_hold_what_the_last_one_held() -> None:
    """capture_changed gives None exactly when a fresh capture says what the last one it
    made said: after history items that are not messages, or nothing at all; never after
    a message, a move, a Context change (in place included) or a value becoming sensitive."""
    cache = CaptureCache()
    made: list[Checkpoint] = []
    skips: list[bool] = []

    def step(run: Any) -> None:
        got = capture_changed(run, "c", 1, cache=cache)
        fresh = capture(run, "c", 1)
        skips.append(got is None)
        if got is None:
            assert stored(fresh) == stored(made[-1])
        else:
            assert stored(got) == stored(fresh)
            made.append(got)

    script = ScriptedLLM(["Hello.", call("noted", topic="bills"), "Noted.", "Fine."])
    async with AgentSession[Card]() as session:
        run = await card_flow.start(session, llm=script, wait_opening=True)
        step(run)
        step(run)  # nothing happened
        session.history.items.append(llm.FunctionCall(call_id="x", name="lookup",
                                                      arguments="{}"))
        step(run)  # a tool call is not a message
        await session.run(user_input="about bills")  # a move, its messages
        step(run)
        step(run)
        run.context.topic = run.context.topic  # the very object again
        step(run)
        run.context.topic = "other"
        step(run)
        run.context.pin = PIN  # now sensitive: scrubbed with other values
        step(run)
        await session.run(user_input="fine")
        step(run)
    assert skips == [False, True, True, False, True, True, False, False, False]

    cache = CaptureCache()
    made.clear()
    skips.clear()
    async with AgentSession[Notes]() as session:
        run = await notes_flow.start(session, llm=ScriptedLLM(["Hi."]), wait_opening=True)
        step(run)
        run.context.lines.append("in place")  # unseen by any assignment
        step(run)
        run.context.count = 1
        step(run)
    assert skips == [False, False, False]
    assert made[-1].context == {"lines": ["in place"], "count": 1}
