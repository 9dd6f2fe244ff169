"""Diagrams rendered by the real ``dot``: every state and edge label is in the SVG,
the output is deterministic, and a diff colours exactly the changed elements."""

from __future__ import annotations

import random
import struct
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from hypothesis import given, settings

from handoff import Flow
from handoff.diagram import ACTIVE_FILL, SIDE_TRIP, render, to_dot, to_mermaid
from handoff.diagram_diff import COLORS, compare, diff_dot, diff_markdown, diff_mermaid
from handoff.guards import context_fields, guard_text
from handoff.snapshot import FlowSnap, snapshot

from .flowgen import TIERS, Ctx, chain_flow, graphs, make_flow, make_state, make_transition

SVG = "{http://www.w3.org/2000/svg}"



def svg_of(dot: Any) -> ET.Element:
    return ET.fromstring(render(dot, "svg"))


def texts(element: ET.Element) -> list[str]:
    return [t.text or "" for t in element.iter(f"{SVG}text")]


def groups(root: ET.Element, kind: str) -> dict[str, ET.Element]:
    """SVG ``<g class="node|edge">`` elements by their ``<title>`` (``A->B`` for edges)."""
    out = {}
    for g in root.iter(f"{SVG}g"):
        if g.get("class") == kind:
            title = g.find(f"{SVG}title")
            assert title is not None and title.text is not None
            out[title.text] = g
    return out


def strokes(g: ET.Element) -> set[str]:
    return {s.get("stroke", "") for s in g.iter() if s.tag in (f"{SVG}path", f"{SVG}polygon")}


def fills(g: ET.Element) -> set[str]:
    return {s.get("fill", "") for s in g.iter() if s.tag in (f"{SVG}path", f"{SVG}polygon")}


def callcenter() -> Flow[Any]:
    from examples.callcenter.flow import flow

    return flow


@pytest.mark.parametrize("make", [callcenter, lambda: chain_flow(25)], ids=["callcenter", "25"])
def test_svg_shows_every_state_and_edge(make: Any) -> None:
    flow = make()
    snap = snapshot(flow)
    root = svg_of(to_dot(flow))
    words = " ".join(texts(root))
    nodes, edges = groups(root, "node"), groups(root, "edge")
    for state in snap.states:
        assert state.name in texts(root)
        assert state.name in nodes
        assert f"tier {state.tier}" in words
        for tool in state.tools:
            assert tool in words
        assert state.doc.split()[0] in words
        periphery_count = sum(1 for s in nodes[state.name].iter()
                              if s.tag in (f"{SVG}path", f"{SVG}polygon"))
        assert periphery_count == (2 if state.name in snap.final else 1), state.name
    for edge in snap.edges:
        assert edge.trigger in texts(root)
        source = edge.source or "__any__"
        assert f"{source}->{edge.target}" in edges
        if edge.guard:
            assert f"[{edge.guard}]" in texts(root)
    assert f"__start__->{snap.initial}" in edges
    assert "any state" in texts(root) and "global transitions" in texts(root)
    # a global transition is drawn once, not once per state
    for edge in snap.edges:
        if edge.source is None:
            assert sum(edge.trigger == t for t in texts(root)) == 1


def test_callcenter_guards_are_shown_as_expressions() -> None:
    labels = texts(svg_of(to_dot(callcenter())))
    assert "[c.verified]" in labels
    assert "[0 < amount <= c.refund_limit]" in labels


def test_png_is_a_real_image() -> None:
    data = render(to_dot(chain_flow(25)), "png")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 200 and height > 200


def test_deep_flows_are_drawn_top_to_bottom() -> None:
    assert "rankdir=LR" in to_dot(callcenter()).source
    assert "rankdir=TB" in to_dot(chain_flow(25)).source


def test_highlight_fills_one_state() -> None:
    root = svg_of(to_dot(callcenter(), highlight="Billing"))
    nodes = groups(root, "node")
    assert ACTIVE_FILL in fills(nodes["Billing"])
    assert all(ACTIVE_FILL not in fills(g) for name, g in nodes.items() if name != "Billing")
    with pytest.raises(ValueError, match="no such state"):
        to_dot(callcenter(), highlight="Nowhere")
    assert "class s_Billing active" in to_mermaid(callcenter(), highlight="Billing")


def test_output_does_not_depend_on_declaration_order() -> None:
    def build(seed: int) -> Flow[Any]:
        rng = random.Random(seed)
        names = ["A", "B", "C", "D", "E"]
        states = [make_state(n, [make_transition(f"{n.lower()}_to_{t}", t)
                                 for t in names if t != n][:2], tools=["z_tool", "a_tool"])
                  for n in names]
        rng.shuffle(states)
        return Flow("order", context=Ctx, initial="A", states=states, final=["E"], tiers=TIERS)

    first, second = build(1), build(2)
    assert [c.state_name() for c in first.state_classes] != [
        c.state_name() for c in second.state_classes]
    assert to_dot(first).source == to_dot(second).source
    assert to_mermaid(first) == to_mermaid(second)


def test_mermaid_has_every_state_and_edge_escaped() -> None:
    flow = callcenter()
    text = to_mermaid(flow)
    assert text.startswith("%% flow callcenter")
    for state in snapshot(flow).states:
        assert f'  s_{state.name}["<b>{state.name}</b>' in text
    assert '  s_Triage -->|"billing_question<br/>[c.verified]"| s_Billing' in text
    assert "[0 #60; amount #60;= c.refund_limit]" in text  # no raw < inside a label
    assert '  any_state -.->|"escalate_to_human"| s_Escalation' in text
    assert "  class s_Escalation,s_Wrapup final" in text


def test_mermaid_ids_survive_reserved_words() -> None:
    flow = make_flow({"start": [("go", "end")], "end": []}, initial="start", final=["end"])
    text = to_mermaid(flow)
    assert "s_start -->" in text and "| s_end" in text


# -- diff -------------------------------------------------------------------------------
def two_versions() -> tuple[Flow[Any], Flow[Any]]:
    old = make_flow(
        {"A": [("ab", "B"), ("ac", "C")], "B": [("bd", "D")], "C": [("cd", "D")], "D": []},
        initial="A", final=["D"], global_edges=[("help", "D")], name="v")
    states = [
        make_state("A", [make_transition("ab", "B"),
                         make_transition("ac", "D", doc="Call to go to C.")]),  # retargeted
        make_state("B", [make_transition("bd", "D", when=lambda c: c.verified)]),  # guard added
        make_state("D", tier="smart"),                                            # tier changed
        make_state("E", [make_transition("ed", "D")]),                            # added
    ]
    new = Flow("v", context=Ctx, initial="A", states=states, final=["D"], tiers=TIERS,
               global_transitions=[make_transition("help", "D", method=False),
                                   make_transition("human", "E", method=False)],
               version="2")
    return old, new


def test_diff_marks_exactly_the_changed_elements() -> None:
    old, new = two_versions()
    diff = compare(old, new)
    assert {n: e.status for n, e in diff.states.items()} == {
        "A": "unchanged", "B": "unchanged", "C": "removed", "D": "changed", "E": "added"}
    assert diff.states["D"].details == ("tier: fast → smart",)
    assert {k: e.status for k, e in diff.edges.items()} == {
        ("A", "ab"): "unchanged", ("A", "ac"): "changed", ("B", "bd"): "changed",
        ("C", "cd"): "removed", ("E", "ed"): "added", ("", "help"): "unchanged",
        ("", "human"): "added"}
    assert diff.edges[("A", "ac")].details == ("target: C → D",)
    assert diff.edges[("B", "bd")].details == ("guard: none → c.verified",)


def test_diff_svg_colours_every_element_by_its_status() -> None:
    old, new = two_versions()
    diff = compare(old, new)
    root = svg_of(diff_dot(diff))
    nodes, edges = groups(root, "node"), groups(root, "edge")
    for name, element in diff.states.items():
        assert COLORS[element.status][0] in strokes(nodes[name]), name
    for (source, trigger), element in diff.edges.items():
        edge = diff.edge((source, trigger))
        g = edges[f"{source or '__any__'}->{edge.target}"]
        assert COLORS[element.status][0] in strokes(g), trigger
        assert trigger in texts(g)
    removed = [p for p in edges["C->D"].iter(f"{SVG}path")]
    assert removed and all(p.get("stroke-dasharray") for p in removed)
    assert "target: C → D" in texts(root)


def test_diff_markdown_lists_only_changes() -> None:
    old, new = two_versions()
    text = diff_markdown(compare(old, new))
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert text.startswith(f"### Flow `v`: v{old.version} → v2\n")  # old: a derived version
    assert rows[0] == "| change | element | details |"
    assert len(rows) == 1 + 8  # C, D, E; A.ac, B.bd, C.cd, E.ed, any.human
    assert "| 🟠 changed | state `D` | tier: fast → smart |" in rows
    assert "| 🔴 removed | state `C` | The C state of a generated flow.; tier fast |" in rows
    assert "| 🟠 changed | transition `A.ac → D` | target: C → D |" in rows
    assert "| 🟢 added | transition `any state.human → E` |  |" in rows
    assert "\n3 added, 2 removed, 3 changed, 4 unchanged\n" in text


def test_diff_of_identical_flows_says_so() -> None:
    flow = callcenter()
    diff = compare(flow, flow)
    assert not diff.changed
    assert "No change" in diff_markdown(diff)
    mermaid = diff_mermaid(diff)
    assert ":::added" not in mermaid and ":::unchanged" in mermaid


def test_snapshot_round_trips_through_json() -> None:
    snap = snapshot(callcenter())
    assert FlowSnap.from_json(snap.to_json()) == snap


@settings(max_examples=80, deadline=None)
@given(graphs(max_states=6), graphs(max_states=6))
def test_diff_statuses_are_the_set_differences(old_spec: dict[str, Any],
                                               new_spec: dict[str, Any]) -> None:
    old, new = make_flow(**old_spec), make_flow(**new_spec)
    diff = compare(old, new)

    def edges(spec: dict[str, Any]) -> dict[tuple[str, str], str]:
        out = {(s, t): target for s, pairs in spec["graph"].items() for t, target in pairs}
        return out | {("", t): target for t, target in spec["global_edges"]}

    a, b = edges(old_spec), edges(new_spec)
    expected_edges = {k: "added" for k in b.keys() - a.keys()}
    expected_edges |= {k: "removed" for k in a.keys() - b.keys()}
    expected_edges |= {k: "changed" if a[k] != b[k] else "unchanged" for k in a.keys() & b.keys()}
    assert {k: e.status for k, e in diff.edges.items()} == expected_edges

    sa, sb = set(old_spec["graph"]), set(new_spec["graph"])
    expected_states = {s: "added" for s in sb - sa} | {s: "removed" for s in sa - sb}
    expected_states |= {  # generated states differ only in being final or not
        s: "changed" if (s in old_spec["final"]) != (s in new_spec["final"]) else "unchanged"
        for s in sa & sb}
    assert {k: e.status for k, e in diff.states.items()} == expected_states
    assert diff.changed == (expected_edges != dict.fromkeys(expected_edges, "unchanged")
                            or expected_states != dict.fromkeys(expected_states, "unchanged")
                            or old_spec["initial"] != new_spec["initial"])


def test_guard_text_and_fields_of_lambdas_sharing_a_line() -> None:
    first, second = lambda c: c.alpha > 1, lambda c: c.beta
    assert (guard_text(first), guard_text(second)) == ("c.alpha > 1", "c.beta")
    assert (context_fields(first), context_fields(second)) == ({"alpha"}, {"beta"})
    assert guard_text(None) is None
    namespace: dict[str, Any] = {}
    exec("built = lambda c: c.verified", namespace)  # no source file to read the text from
    assert guard_text(namespace["built"]) == "guard"
    assert context_fields(namespace["built"]) == {"verified"}  # the bytecode still tells

    def is_vip(c: Any) -> bool:
        return bool(c.vip)

    assert guard_text(is_vip) == "is_vip"
    assert context_fields(print) is None  # a builtin: nothing to read, nothing claimed
    assert len(guard_text(lambda c: c.a_really_long_field_name + c.another_long_name
                          + c.and_a_third_long_field_name) or "") == 60


def test_side_trips_and_returns_are_drawn() -> None:
    from .test_validate import side_trip_flow

    flow = side_trip_flow()
    root = svg_of(to_dot(flow))
    edges = groups(root, "edge")
    assert "Verify->__return__" in edges and "__any__->Verify" in edges
    assert SIDE_TRIP in texts(edges["__any__->Verify"])
    assert "↩ back to the state" in texts(root)
    mermaid = to_mermaid(flow)
    assert '  s_Verify -->|"confirmed"| return_point' in mermaid
    assert "side trip" in mermaid
    diff = compare(side_trip_flow(returns=False), flow)
    assert diff.edges[("", "verify")].details == ("now starts a side trip",)
    assert "Verify->__return__" in groups(svg_of(diff_dot(diff)), "edge")


def test_a_new_initial_state_is_shown() -> None:
    old = make_flow({"A": [("go", "B")], "B": []}, initial="A", final=["B"])
    new = make_flow({"A": [("go", "B")], "B": []}, initial="B", final=["B"])
    diff = compare(old, new)
    assert diff.changed and diff.counts()["unchanged"] == 3
    assert "| 🟠 changed | initial state | `A` → `B` |" in diff_markdown(diff)
    edges = groups(svg_of(diff_dot(diff)), "edge")
    assert COLORS["removed"][0] in strokes(edges["__start__->A"])
    assert COLORS["added"][0] in strokes(edges["__start__->B"])
    assert "  flow_start -.-> s_A" in diff_mermaid(diff)


def test_side_trip_results_and_awaited_tasks_are_drawn() -> None:
    """A typed ``to=RETURN`` edge says what it returns; a state lists the LiveKit tasks its
    code awaits; both round-trip through JSON and show in ``handoff diff``."""
    from .test_side_trip_results import make_flow as results_flow
    from .test_subtasks import flow as contacts

    flow = results_flow()
    root = svg_of(to_dot(flow))
    edges = groups(root, "edge")
    assert "returns Identity" in texts(edges["Verify->__return__"])
    assert "returns bool" in texts(edges["Consent->__return__"])
    assert not any(t.startswith("returns") for t in texts(edges["Billing->Verify"]))
    mermaid = to_mermaid(flow)
    assert '  s_Verify -->|"identity_checked<br/>returns Identity"| return_point' in mermaid

    desk = svg_of(to_dot(contacts))
    node = groups(desk, "node")["Desk"]
    assert "tasks: GetEmailTask, GetPhoneNumberTask, TaskGroup" in " ".join(texts(node))
    assert "tasks: GetEmailTask, GetPhoneNumberTask, TaskGroup" in to_mermaid(contacts)
    assert snapshot(contacts).state("Done").tasks == ()  # type: ignore[union-attr]
    for snap in (snapshot(flow), snapshot(contacts)):
        assert FlowSnap.from_json(snap.to_json()) == snap

    older = FlowSnap.from_json(snapshot(flow).to_json().replace('"Identity"', '"bool"'))
    diff = compare(older, flow)
    assert diff.edges[("Verify", "identity_checked")].details == ("result: bool → Identity",)
    older = FlowSnap.from_json(snapshot(contacts).to_json().replace('"TaskGroup"', '"GetDOBTask"'))
    assert compare(older, contacts).states["Desk"].details == ("tasks: +TaskGroup, -GetDOBTask",)
