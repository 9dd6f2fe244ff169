"""Redaction: sensitive Context values never survive scrubbing, whatever the text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field

from handoff import Context
from handoff.redaction import MIN_SCRUB_LENGTH, REDACTED, Redactor


class Secretive(Context):
    name: str | None = None
    pin: str | None = Field(default=None, json_schema_extra={"pii": True})
    card: int | None = Field(default=None, json_schema_extra={"pii": True})


# values and text drawn mostly from the marker's own characters, text made of pieces of
# the value: the hard cases are a value that the marker and its neighbours spell again
# ("d]]" in "d]]]" -> "[redacted]]", "]x]" in "]x]x]" -> "[redacted]x]")
ALPHABET = "[]redact x0"
secrets = st.one_of(st.text(min_size=MIN_SCRUB_LENGTH, max_size=8),
                    st.text(ALPHABET, min_size=MIN_SCRUB_LENGTH, max_size=5),
                    ).filter(lambda s: s not in REDACTED)


@given(data=st.data(), secret=secrets)
@settings(max_examples=500)
def test_scrubbed_text_never_contains_the_value(data: st.DataObject, secret: str) -> None:
    pieces = [secret, *(secret[i:] for i in range(1, len(secret))),
              *(secret[:i] for i in range(1, len(secret)))]
    parts = data.draw(st.lists(st.one_of(st.sampled_from(pieces), st.text(ALPHABET, max_size=3)),
                               max_size=8))
    text = "".join(parts) + secret
    scrubbed = Redactor(Secretive(pin=secret)).text(text)
    assert secret not in scrubbed


def test_plain_fields_quoting_a_secret_are_kept_apart_whole() -> None:
    ctx = Secretive(name="said 4111222233334444 twice", pin="0042", card=4111222233334444)
    plain, apart = Redactor(ctx).context_dump()
    assert plain == {"name": f"said {REDACTED} twice"}
    assert apart == {"pin": "0042", "card": 4111222233334444,
                     "name": "said 4111222233334444 twice"}
    assert {**plain, **apart} == ctx.model_dump(mode="json")


class Unmarked(Context):
    topic: str | None = None


def test_a_kept_redactor_reads_what_its_context_remembered_since() -> None:
    """A Redactor of a Context without sensitive fields keeps its values until some
    Context remembers a new one (the recorders keep one Redactor per call)."""
    context = Unmarked(topic="hello")
    redactor = Redactor(context)
    assert redactor.values() == []
    assert redactor.values() is redactor.values()  # read once, not at every call
    Secretive(pin="other-secret")  # another Context's memory: read again, same answer
    assert redactor.values() == []
    context.remember_sensitive(["card 4111"])  # a tool argument marked pii
    assert redactor.values() == ["card 4111"]
    assert redactor.text("my card 4111.") == f"my {REDACTED}."
    context.remember_sensitive(["longer secret"])
    assert redactor.values() == ["longer secret", "card 4111"]


def test_short_values_are_not_scrubbed_by_value() -> None:
    assert Redactor(Secretive(pin="42")).text("room 42") == "room 42"
    assert Redactor(Secretive()).value({"a": ["x"]}) == {"a": ["x"]}


class Plain(Context):
    note: str | None = None


def test_a_context_holds_sensitive_values_once_a_field_or_a_remembered_value_can_be_one() -> None:
    plain = Plain(note="call me at 555 0100")
    assert not plain.holds_sensitive()  # no pii field, nothing remembered: nothing to scrub
    assert Redactor(plain).values() == []
    plain.remember_sensitive(["555 0100"])  # a pii tool argument, say
    assert plain.holds_sensitive()
    assert Redactor(plain).values() == ["555 0100"]
    assert Secretive().holds_sensitive()  # a pii field, even before it holds a value


class Figures(Context):
    count: int = 1
    amount: float = 0.0
    topic: str = "billing"


def test_the_same_inputs_are_the_same_field_objects_and_equal_values() -> None:
    """A context step skips the dump only when every field holds the very object it held
    (an equal one may dump differently: ``True == 1``, ``-0.0 == 0.0``) and the sensitive
    values are equal (a Context with pii fields gives a new list at every step)."""
    from handoff.redaction import dump_inputs, same_inputs

    ctx = Figures()
    read = dump_inputs(ctx, ["secret"])
    assert same_inputs(dump_inputs(ctx, ["secret"]), read)  # an equal list, not the same one
    assert same_inputs(read, read)
    assert not same_inputs(dump_inputs(ctx, ["secret", "other"]), read)
    assert not same_inputs(dump_inputs(ctx, []), read)
    assert not same_inputs(dump_inputs(Figures(), ["secret"]), read)  # another Context
    assert not same_inputs(read, ()) and not same_inputs((), read)
    for name, equal in (("count", True), ("amount", -0.0), ("topic", "".join(["bill", "ing"]))):
        before = dump_inputs(ctx, [])
        old = ctx.__dict__[name]
        assert equal == old and equal is not old
        ctx.__dict__[name] = equal  # as a rollback writes: equal, not the same object
        assert not same_inputs(dump_inputs(ctx, []), before), name
        assert same_inputs(dump_inputs(ctx, []), dump_inputs(ctx, []))
    assert dump_inputs(ctx, None) == ()  # the values unknown: nothing to compare


def test_unchanged_says_what_same_inputs_of_a_new_dump_would() -> None:
    from handoff.redaction import dump_inputs, same_inputs, unchanged

    ctx, other = Figures(), Figures()
    cases = [([], []), (["secret"], ["secret"]), (["secret"], []), (None, []), ([], None)]
    for values, before_values in cases:
        for before in (dump_inputs(ctx, before_values), dump_inputs(other, before_values), ()):
            now = dump_inputs(ctx, values)
            assert unchanged(ctx, values, before) == (bool(now) and same_inputs(now, before))
    before = dump_inputs(ctx, [])
    ctx.__dict__["count"] = True
    assert not unchanged(ctx, [], before)


def test_a_kept_redactor_scrubs_each_new_value_as_soon_as_it_is_one() -> None:
    """The scrub pattern is kept while the values stay the same, made again when they change."""
    context = Secretive(pin="first-pin")
    redactor = Redactor(context)
    line = "pins first-pin and second-pin"
    assert redactor.text(line) == f"pins {REDACTED} and second-pin"
    assert redactor.text(line) == f"pins {REDACTED} and second-pin"
    context.pin = "second-pin"  # the old value is remembered, the new one scrubbed too
    assert redactor.text(line) == f"pins {REDACTED} and {REDACTED}"
    assert redactor.value({"said": [line]}, ["first-pin"]) == {"said": [f"pins {REDACTED} and second-pin"]}
