"""Build Flow classes from plain data, for tests: states made with ``type()``.

``make_flow({"A": [("go", "B")], "B": []}, initial="A", final=["B"])`` is a flow
with two states and one transition; every transition is a real ``@transition``
on a real State subclass, so the Flow constructor validates it as it would user code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hypothesis import strategies as st
from livekit.agents import RunContext, function_tool

from handoff import Context, Flow, State, transition
from handoff.tiers import TierConfig, Tiers
from handoff.transition import TransitionDef

TIERS = Tiers({"fast": TierConfig("fast", "m-fast"), "smart": TierConfig("smart", "m-smart")},
              source="tests")


class Ctx(Context):
    verified: bool = False
    limit: float = 10.0


def make_transition(trigger: str, target: str, *, doc: str | None = None,
                    when: Callable[..., bool] | None = None, refused: Any = None,
                    method: bool = True, returns: bool = False) -> TransitionDef:
    """A ``@transition`` named ``trigger`` to ``target`` (a method, or a global function)."""
    if method:
        async def body(self: Any, ctx: RunContext[Ctx]) -> None:
            return None
    else:
        async def body(ctx: RunContext[Ctx]) -> None:  # type: ignore[misc]
            return None
    body.__name__ = body.__qualname__ = trigger
    body.__doc__ = f"Call to go to {target}." if doc is None else doc
    return transition(to=target, when=when, refused=refused, returns=returns)(body)


def make_tool(name: str) -> Any:
    async def tool(self: Any, ctx: RunContext[Ctx]) -> str:
        return "ok"
    tool.__name__ = tool.__qualname__ = name
    tool.__doc__ = f"The {name} tool."
    return function_tool(tool)


def make_state(name: str, transitions: Sequence[TransitionDef] = (), *, doc: str | None = None,
               tier: str = "fast", tools: Sequence[str] = (),
               extra: Mapping[str, Any] | None = None) -> type[State[Any]]:
    body: dict[str, Any] = {
        "__doc__": f"The {name} state of a generated flow." if doc is None else doc,
        "__module__": __name__,
        "tier": tier,
        "instructions": f"You are {name}.",
    }
    for tdef in transitions:
        body[tdef.name] = tdef
    for tool in tools:
        body[tool] = make_tool(tool)
    body.update(extra or {})
    return type(name, (State,), body)


def make_flow(graph: Mapping[str, Sequence[tuple[str, str]]], *, initial: str,
              final: Sequence[str] = (), global_edges: Sequence[tuple[str, str]] = (),
              name: str = "generated", context: type[Context] = Ctx,
              **options: Any) -> Flow[Any]:
    """A flow from ``{state: [(trigger, target), ...]}`` plus global ``(trigger, target)``;
    ``options`` go to ``Flow`` (``version=``, ``migrations=``…)."""
    states = [
        make_state(state, [make_transition(t, target) for t, target in edges])
        for state, edges in graph.items()
    ]
    globals_ = [make_transition(t, target, method=False) for t, target in global_edges]
    return Flow(name, context=context, initial=initial, states=states, final=final,
                global_transitions=globals_, tiers=TIERS, **options)


def chain_flow(n: int, *, name: str = "big") -> Flow[Any]:
    """A readable-layout stress flow: ``n`` states, forward and back edges, guards, tools,
    two finals and a global escalation."""
    names = [f"Step{i:02d}" for i in range(n - 2)] + ["Done", "Human"]
    states = []
    for i, state in enumerate(names[:-2]):
        nxt = names[i + 1] if i + 1 < n - 2 else "Done"
        tdefs = [make_transition(f"next_from_{i:02d}", nxt)]
        if i % 3 == 1:
            skip_to = names[i + 3] if i + 3 < n - 2 else "Done"
            tdefs.append(make_transition(f"skip_from_{i:02d}", skip_to,
                                         when=lambda c: c.verified, refused="verify first"))
        if i % 5 == 4:
            tdefs.append(make_transition(f"back_from_{i:02d}", names[i - 3]))
        states.append(make_state(state, tdefs, tier="smart" if i % 4 == 0 else "fast",
                                 tools=[f"lookup_{i:02d}"] if i % 2 else []))
    states.append(make_state("Done", doc="Says goodbye."))
    states.append(make_state("Human", doc="Transfers the caller to a human.",
                             tools=["transfer_call"]))
    return Flow(name, context=Ctx, initial=names[0], states=states, final=["Done", "Human"],
                global_transitions=[make_transition("escalate", "Human", method=False)],
                tiers=TIERS)


@st.composite
def graphs(draw: st.DrawFn, max_states: int = 9) -> dict[str, Any]:
    """Keyword arguments of :func:`make_flow` for a random (valid) flow graph.

    Triggers are numbered per flow (``t0``, ``t1``...), so two drawn graphs share
    some (source, trigger) keys, which is what the diff tests need.
    """
    n = draw(st.integers(1, max_states))
    names = [f"S{i}" for i in range(n)]
    pairs = draw(st.lists(st.tuples(st.sampled_from(names), st.sampled_from(names)),
                          max_size=3 * n))
    global_targets = draw(st.lists(st.sampled_from(names), max_size=2, unique=True))
    final = draw(st.lists(st.sampled_from(names), max_size=n, unique=True))
    graph: dict[str, list[tuple[str, str]]] = {name: [] for name in names}
    for i, (source, target) in enumerate(pairs):
        graph[source].append((f"t{i}", target))
    return {"graph": graph, "initial": draw(st.sampled_from(names)), "final": final,
            "global_edges": [(f"g{i}", t) for i, t in enumerate(global_targets)]}
