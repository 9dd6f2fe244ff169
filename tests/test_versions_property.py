"""Property: what ``handoff diff`` calls safe for calls in flight really is safe.

For random pairs of generated flows (random graphs, random Context schemas), a
call checkpointed by the old flow in any state the diff judges *safe* resumes in
the new flow without a migration: in the same state, with every value it held.
And a call in a state the new flow no longer has is never judged safe.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from pydantic import create_model

from handoff import Context, Flow
from handoff.diagram_diff import compare
from handoff.inflight import assess
from handoff.persistence import Checkpoint, Checkpointer, MemoryStore, capture
from handoff.resume import restore_run
from handoff.telemetry import HandoffMetrics

from .flowgen import graphs, make_flow

# a field type: (annotation, default, strategy of values)
FIELD_TYPES: list[tuple[Any, Any, st.SearchStrategy[Any]]] = [
    (int, 0, st.integers(-1000, 1000)),
    (float, 0.0, st.floats(-1e6, 1e6, allow_nan=False)),
    (str, "", st.text("abcxyz", max_size=4)),
    (bool, False, st.booleans()),
    (int | None, None, st.none() | st.integers(-1000, 1000)),
    (str | None, None, st.none() | st.text("abcxyz", max_size=4)),
    (int | str | None, None, st.none() | st.integers(0, 9) | st.text("ab", max_size=2)),
    (list[int], [], st.lists(st.integers(0, 9), max_size=3)),
]
NAMES = ["a", "b", "c", "d"]


@st.composite
def schemas(draw: st.DrawFn) -> dict[str, tuple[int, bool]]:
    """Field name → (index in FIELD_TYPES, required)."""
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=4))
    return {n: (draw(st.integers(0, len(FIELD_TYPES) - 1)), draw(st.booleans()))
            for n in names}


WIDER = {0: 4, 2: 5, 4: 6, 5: 6}
"""Kinds whose values all fit another kind: int → int | None, str → str | None, …"""


@st.composite
def next_schemas(draw: st.DrawFn, old: dict[str, tuple[int, bool]]) -> dict[str, tuple[int, bool]]:
    """A schema a next version might have: the same, a few edits of it, or anything."""
    choice = draw(st.sampled_from(["same", "edited", "edited", "other"]))
    if choice == "same":
        return dict(old)
    if choice == "other":
        return draw(schemas())
    new = dict(old)
    for _ in range(draw(st.integers(1, 3))):
        edit = draw(st.sampled_from(["add", "widen", "retype", "drop", "require"]))
        name = draw(st.sampled_from(NAMES))
        kind, required = new.get(name, (0, False))
        if edit == "add" and name not in new:
            new[name] = (draw(st.integers(0, len(FIELD_TYPES) - 1)), draw(st.booleans()))
        elif edit == "widen" and name in new and kind in WIDER:
            new[name] = (WIDER[kind], required)
        elif edit == "retype" and name in new:
            new[name] = (draw(st.integers(0, len(FIELD_TYPES) - 1)), required)
        elif edit == "drop":
            new.pop(name, None)
        elif edit == "require" and name in new:
            new[name] = (kind, not required)
    return new


def context_class(schema: dict[str, tuple[int, bool]]) -> type[Context]:
    fields: dict[str, Any] = {}
    for name, (kind, required) in schema.items():
        annotation, default, _ = FIELD_TYPES[kind]
        fields[name] = (annotation, ... if required else default)
    return create_model("Generated", __base__=Context, **fields)  # type: ignore[call-overload,no-any-return]


def checkpointer() -> Checkpointer:
    return Checkpointer(MemoryStore(), metrics=HandoffMetrics(CollectorRegistry()))


@settings(deadline=None)
@given(old_graph=graphs(max_states=6), other_graph=graphs(max_states=6),
       old_schema=schemas(), data=st.data())
def test_every_state_diff_calls_safe_resumes_without_a_migration(
    old_graph: dict[str, Any], other_graph: dict[str, Any],
    old_schema: dict[str, tuple[int, bool]], data: st.DataObject,
) -> None:
    new_graph = data.draw(st.sampled_from([old_graph, other_graph]), label="new graph")
    new_schema = data.draw(next_schemas(old_schema), label="new schema")
    old: Flow[Any] = make_flow(**old_graph, context=context_class(old_schema))
    new: Flow[Any] = make_flow(**new_graph, context=context_class(new_schema))
    in_flight = assess(compare(old, new))
    values = {name: data.draw(FIELD_TYPES[kind][2], label=name)
              for name, (kind, _) in old_schema.items()}
    held = old.context_type(**values)
    for state in old.states:
        verdict = in_flight.call_verdict(state)
        if state not in new.states:
            assert verdict == "needs-migration"
        event(f"a call in a state judged {verdict}")
        if verdict != "safe":
            continue
        with old.new_run(held) as run:
            run.restore(state)
            checkpoint = Checkpoint.from_json(capture(run, "call", 1).to_json())
        resumed, outcome = restore_run(new, checkpoint, checkpointer())
        with resumed:
            assert (outcome, resumed.state) == ("resumed", state), (state, in_flight.impacts)
            was = json.loads(held.model_dump_json())
            now = json.loads(resumed.context.model_dump_json())
            assert {k: now[k] for k in was} == was
