"""An event's stored form is its ``to_dict`` encoded, whatever its data holds."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from handoff.events.event import Event

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=10)


@given(data=st.dictionaries(st.text(max_size=4), values, max_size=4),
       seq=st.integers(min_value=0), at=st.floats(), kind=st.text(max_size=5))
def test_to_json_is_to_dict_encoded(data: dict[str, Any], seq: int, at: float,
                                    kind: str) -> None:
    event = Event("call", seq, at, kind, "S", "flow", "1", data)
    expected = json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False,
                          default=str)
    assert event.to_json() == expected
    assert Event.from_json(event.to_json()).to_json() == expected
