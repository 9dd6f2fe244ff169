"""What changed between two versions of a flow: a coloured diagram and a PR table.

States are matched by name, transitions by (source state, trigger); a global
transition's source is "any state". Each element is *added* (green), *removed*
(red, dashed), *changed* (orange, with what changed written on it) or
*unchanged* (grey). A change is anything a reviewer should look at: the
docstring line, tier, tools, awaited LiveKit tasks, final or not, history policy and
prompt of a state; the target, guard, docstring, arguments, history policy, side trip and
side-trip result type of a transition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import graphviz

from .diagram import (
    ANY,
    MERMAID_ANY,
    MERMAID_BACK,
    MERMAID_BACK_SHAPE,
    MERMAID_START,
    START,
    MermaidIds,
    add_any_node,
    add_return_node,
    as_snapshot,
    edge_label,
    esc,
    mermaid_edge_text,
    mermaid_state_text,
    mesc,
    new_digraph,
    state_label,
    target_id,
)
from .snapshot import EdgeSnap, FlowSnap, StateSnap
from .transition import RETURN

K = TypeVar("K", str, tuple[str, str])
V = TypeVar("V", StateSnap, EdgeSnap)

Status = Literal["added", "removed", "changed", "unchanged"]
STATUSES: tuple[Status, ...] = ("added", "removed", "changed", "unchanged")

# ink (border, text) and fill of each status
COLORS: dict[str, tuple[str, str]] = {
    "added": ("#2b8a3e", "#ebfbee"),
    "removed": ("#c92a2a", "#fff5f5"),
    "changed": ("#d9480f", "#fff4e6"),
    "unchanged": ("#868e96", "#ffffff"),
}
MARKS = {"added": "🟢 added", "removed": "🔴 removed", "changed": "🟠 changed",
         "unchanged": "⚪ unchanged"}


@dataclass(frozen=True)
class Element:
    """One state or transition of either version, with its status and what changed."""

    status: Status
    details: tuple[str, ...] = ()


@dataclass
class FlowDiff:
    old: FlowSnap
    new: FlowSnap
    states: dict[str, Element] = field(default_factory=dict)
    edges: dict[tuple[str, str], Element] = field(default_factory=dict)
    labels: tuple[str, str] | None = None
    """How to name the two sides (e.g. the git revision); default: their versions."""

    @property
    def title(self) -> str:
        old, new = self.labels or (f"v{self.old.version}", f"v{self.new.version}")
        return f"{self.new.name}: {old} → {new}"

    @property
    def initial_changed(self) -> bool:
        return self.old.initial != self.new.initial

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for element in [*self.states.values(), *self.edges.values()]:
            out[element.status] += 1
        return out

    @property
    def changed(self) -> bool:
        """True when anything differs (the graph, or the initial state)."""
        counts = self.counts()
        return self.initial_changed or counts["unchanged"] != sum(counts.values())

    def edge(self, key: tuple[str, str]) -> EdgeSnap:
        """The edge as drawn: the new version's, or the old one's when it was removed."""
        new = _edges(self.new).get(key)
        return new if new is not None else _edges(self.old)[key]

    def state(self, name: str) -> StateSnap:
        new = self.new.state(name)
        if new is not None:
            return new
        old = self.old.state(name)
        assert old is not None, name
        return old


def compare(old: Any, new: Any, labels: tuple[str, str] | None = None) -> FlowDiff:
    """The diff of two flows (Flows or snapshots); ``labels`` name the sides in titles."""
    a, b = as_snapshot(old), as_snapshot(new)
    diff = FlowDiff(a, b, labels=labels)
    diff.states.update(_classify(
        {s.name: s for s in a.states}, {s.name: s for s in b.states},
        lambda before, after: _state_changes(before, before.name in a.final,
                                             after, after.name in b.final)))
    diff.edges.update(_classify(_edges(a), _edges(b), _edge_changes))
    return diff


def _classify(old: dict[K, V], new: dict[K, V],
              changes: Callable[[V, V], tuple[str, ...]]) -> dict[K, Element]:
    """Each key of either side, in order: added, removed, changed (with what) or unchanged."""
    out: dict[K, Element] = {}
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before is None:
            out[key] = Element("added")
        elif after is None:
            out[key] = Element("removed")
        else:
            details = changes(before, after)
            out[key] = Element("changed" if details else "unchanged", details)
    return out


def _edges(snap: FlowSnap) -> dict[tuple[str, str], EdgeSnap]:
    return {e.key: e for e in snap.edges}


def _state_changes(a: StateSnap, a_final: bool, b: StateSnap, b_final: bool) -> tuple[str, ...]:
    out = []
    if a.doc != b.doc:
        out.append("docstring changed")
    if a.tier != b.tier:
        out.append(f"tier: {a.tier} → {b.tier}")
    if a.tools != b.tools:
        out.append(_names_change("tools", a.tools, b.tools))
    if a_final != b_final:
        out.append("now final" if b_final else "no longer final")
    if a.history != b.history:
        out.append(f"history: {a.history} → {b.history}")
    if a.prompt != b.prompt:
        out.append("instructions changed")
    if a.tasks != b.tasks:
        out.append(_names_change("tasks", a.tasks, b.tasks))
    return tuple(out)


def _names_change(kind: str, old: tuple[str, ...], new: tuple[str, ...]) -> str:
    """``tools: +lookup, -refund``: the names added and removed."""
    added, gone = sorted(set(new) - set(old)), sorted(set(old) - set(new))
    return f"{kind}: " + ", ".join([*(f"+{t}" for t in added), *(f"-{t}" for t in gone)])


def _edge_changes(a: EdgeSnap, b: EdgeSnap) -> tuple[str, ...]:
    out = []
    if a.target != b.target:
        out.append(f"target: {a.target} → {b.target}")
    if a.guard != b.guard:
        out.append(f"guard: {a.guard or 'none'} → {b.guard or 'none'}")
    elif a.guard_code != b.guard_code and None not in (a.guard_code, b.guard_code):
        out.append(f"guard `{b.guard}`: its code changed")
    if a.doc != b.doc:
        out.append("docstring changed")
    if a.params != b.params:
        out.append(f"arguments: ({', '.join(a.params)}) → ({', '.join(b.params)})")
    if a.history != b.history:
        out.append(f"history: {a.history or 'default'} → {b.history or 'default'}")
    if a.returns != b.returns:
        out.append("now starts a side trip" if b.returns else "no longer starts a side trip")
    if a.result != b.result:
        out.append(f"result: {a.result or 'none'} → {b.result or 'none'}")
    return tuple(out)


# -- drawing --------------------------------------------------------------------------
def diff_dot(diff: FlowDiff) -> graphviz.Digraph:
    """The union of both versions, every element coloured by its status."""
    title = diff.title
    dot = new_digraph(diff.new, f"diff of flow {title}; generated by handoff")
    legend = " ".join(
        f'<FONT COLOR="{COLORS[s][0]}">■ {s}</FONT>' for s in STATUSES
    )
    dot.attr(label=f'<<B>{esc(title)}</B><BR/><FONT POINT-SIZE="10">{legend}</FONT>>')
    _diff_start(dot, diff)
    for name, element in diff.states.items():
        ink, fill = COLORS[element.status]
        rows = [f'<TR><TD><FONT POINT-SIZE="9" COLOR="{ink}">{esc(d)}</FONT></TD></TR>'
                for d in element.details]
        final = name in (diff.old.final if element.status == "removed" else diff.new.final)
        attrs = {"color": ink, "fillcolor": fill}
        if element.status == "removed":
            attrs["style"] = "rounded,filled,dashed"
        if element.status != "unchanged":
            attrs["penwidth"] = "2"
        if final:
            attrs["peripheries"] = "2"
        label_ink = ink if element.status == "unchanged" else "#212529"
        dot.node(name, label=state_label(diff.state(name), rows, ink=label_ink), **attrs)
    if any(key[0] == "" for key in diff.edges):
        add_any_node(dot, color=COLORS["unchanged"][0])
    if any(diff.edge(key).target == RETURN for key in diff.edges):
        add_return_node(dot, color=COLORS["unchanged"][0])
    for key, element in diff.edges.items():
        edge = diff.edge(key)
        ink, _ = COLORS[element.status]
        extra = "<BR/>".join(
            f'<FONT POINT-SIZE="9" COLOR="{ink}">{esc(d)}</FONT>' for d in element.details
        )
        attrs = {"color": ink, "fontcolor": ink}
        if element.status == "removed" or edge.source is None:
            attrs["style"] = "dashed"
        if element.status != "unchanged":
            attrs["penwidth"] = "2"
        dot.edge(edge.source or ANY, target_id(edge), label=edge_label(edge, ink, extra, guard_ink=ink),
                 **attrs)
    return dot


def _diff_start(dot: graphviz.Digraph, diff: FlowDiff) -> None:
    dot.node(START, label="", shape="circle", style="filled", fillcolor="black", color="black",
             width="0.2", height="0.2", fixedsize="true")
    if diff.initial_changed:
        dot.edge(START, diff.old.initial, color=COLORS["removed"][0], style="dashed",
                 penwidth="2")
        dot.edge(START, diff.new.initial, color=COLORS["added"][0], penwidth="2")
    else:
        dot.edge(START, diff.new.initial, color="black")


def diff_mermaid(diff: FlowDiff) -> str:
    """The diff as a Mermaid flowchart: classes for states, ``linkStyle`` for edges."""
    ids = MermaidIds(diff.states)
    lines = [f"%% diff of flow {diff.title}",
             "flowchart LR"]
    for status in STATUSES:
        ink, fill = COLORS[status]
        dash = ",stroke-dasharray:5 4" if status == "removed" else ""
        lines.append(f"  classDef {status} fill:{fill},stroke:{ink},color:#212529{dash}")
    links: list[tuple[str, bool]] = []  # (colour, dashed), by link index
    lines.append(f"  {MERMAID_START}(( ))")
    if diff.initial_changed:
        lines.append(f"  {MERMAID_START} -.-> {ids[diff.old.initial]}")
        links.append((COLORS["removed"][0], True))
        lines.append(f"  {MERMAID_START} --> {ids[diff.new.initial]}")
        links.append((COLORS["added"][0], False))
    else:
        lines.append(f"  {MERMAID_START} --> {ids[diff.new.initial]}")
        links.append(("#000000", False))
    for name, element in diff.states.items():
        extra = "<br/>".join(mesc(d) for d in element.details)
        text = mermaid_state_text(diff.state(name), extra)
        lines.append(f'  {ids[name]}["{text}"]:::{element.status}')
    if any(key[0] == "" for key in diff.edges):
        lines += ['  subgraph global ["global transitions"]', f'    {MERMAID_ANY}(["any state"])',
                  "  end"]
    if any(diff.edge(key).target == RETURN for key in diff.edges):
        lines.append(f"  {MERMAID_BACK}{MERMAID_BACK_SHAPE}")
    for key, element in diff.edges.items():
        edge = diff.edge(key)
        dashed = element.status == "removed" or edge.source is None
        source = MERMAID_ANY if edge.source is None else ids[edge.source]
        text = mermaid_edge_text(edge, "<br/>".join(mesc(d) for d in element.details))
        lines.append(f'  {source} {"-.->" if dashed else "-->"}|"{text}"| {ids.target(edge)}')
        links.append((COLORS[element.status][0], dashed))
    for index, (ink, _dashed) in enumerate(links):
        lines.append(f"  linkStyle {index} stroke:{ink},stroke-width:2px")
    return "\n".join(lines) + "\n"


def diff_markdown(diff: FlowDiff) -> str:
    """A summary table for a pull-request comment: every changed element, one per row."""
    name, _, sides = diff.title.partition(": ")
    title = f"### Flow `{name}`: {sides}"
    counts = diff.counts()
    if not diff.changed:
        return f"{title}\n\nNo change to states or transitions.\n"
    summary = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
    rows = ["| change | element | details |", "|---|---|---|"]
    if diff.initial_changed:
        rows.append(f"| {MARKS['changed']} | initial state | "
                    f"`{diff.old.initial}` → `{diff.new.initial}` |")
    for name, element in diff.states.items():
        if element.status != "unchanged":
            details = _md(element.details) or _state_summary(diff.state(name))
            rows.append(f"| {MARKS[element.status]} | state `{_md_code(name)}` | {details} |")
    for key, element in diff.edges.items():
        if element.status != "unchanged":
            edge = diff.edge(key)
            where = f"{edge.source or 'any state'}.{edge.trigger} → {edge.target}"
            details = _md(element.details) or (f"guard `{_md_code(edge.guard)}`"
                                               if edge.guard else "")
            rows.append(f"| {MARKS[element.status]} | transition `{_md_code(where)}` | "
                        f"{details} |")
    return f"{title}\n\n{summary}\n\n" + "\n".join(rows) + "\n"


def _state_summary(state: StateSnap) -> str:
    parts = [state.doc] if state.doc else []
    parts.append(f"tier {state.tier}")
    if state.tools:
        parts.append("tools: " + ", ".join(state.tools))
    if state.tasks:
        parts.append("tasks: " + ", ".join(state.tasks))
    return _md(tuple(parts))


def _md(parts: tuple[str, ...]) -> str:
    return "; ".join(p.replace("|", "\\|") for p in parts)


def _md_code(text: str) -> str:
    return text.replace("`", "'").replace("|", "\\|")
