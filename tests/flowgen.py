"""Build Flow classes from plain data, for tests: states made with ``type()``.

``make_flow({"A": [("go", "B")], "B": []}, initial="A", final=["B"])`` is a flow
with two states and one transition; every transition is a real ``@transition``
on a real State subclass, so the Flow constructor validates it as it would user code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from hypothesis import strategies as st
from livekit.agents import RunContext, function_tool
from pydantic import BaseModel, Field

from handoff import RETURN, Context, Flow, State, transition
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


# -- a corpus of flows shaped like common apps, with planted mutations ------------------------
# Each builder takes the mutation to plant (None: the correct flow) and returns a
# CorpusFlow: the flow and how the toolkit is told what the flow means (entry conditions,
# the tools the LLM may call). Bodies record where they meant to go (`c.heading`), so a
# wrong target breaks an entry condition.
MUTATIONS = ("off-by-one guard", "missing guard", "wrong target", "body raises",
             "guard raises", "tool fails")


@dataclass
class CorpusFlow:
    """One flow of the corpus and what the toolkit needs to know to judge it."""

    flow: Flow[Any]
    entry_conditions: dict[str, Callable[[Any], bool]] = field(default_factory=dict)
    tools: dict[str, dict[str, st.SearchStrategy[Any]]] = field(default_factory=dict)
    mutations: tuple[str, ...] = ()
    """The mutations this flow has a place for."""


def _heading(state: str) -> Callable[[Any], bool]:
    return lambda c: c.heading in (None, state)


def _boom(*_: Any, **__: Any) -> Any:
    raise RuntimeError("planted bug")


def router_flow(mutation: str | None = None) -> CorpusFlow:
    """Hub and spoke: a Router sends the caller to Billing (verified callers only) or
    Tech; each specialist hands back; a global escalation; a free tool with a required
    argument in ``tools=``, a flow-wide tool, a verification tool on the Router."""

    class Desk(Context):
        verified: bool = False
        heading: str | None = None
        looked_up: str | None = None
        notes: int = 0

    @function_tool
    async def lookup(ctx: RunContext[Any], query: str) -> str:
        """Look the caller's question up in the knowledge base."""
        if mutation == "tool fails":
            raise RuntimeError("the knowledge base is down")
        ctx.userdata.looked_up = query
        return f"found {query}"

    @function_tool
    async def take_note(ctx: RunContext[Any]) -> str:
        """Write a note on the call (any state)."""
        ctx.userdata.notes += 1
        return "noted"

    billing_guard: Callable[..., bool] | None = {
        "missing guard": None, "guard raises": _boom}.get(mutation or "", lambda c: c.verified)

    class Router(State[Desk]):
        """Finds out what the caller needs."""

        instructions = "Route the caller."
        tools = [lookup]

        @function_tool
        async def verify(self, ctx: RunContext[Any], pin: str) -> str:
            """Verify the caller with their pin (ordinary tools take `RunContext[Any]`:
            LiveKit resolves their annotations, which cannot name a local Context)."""
            ctx.userdata.verified = pin == "1234"
            return "verified" if ctx.userdata.verified else "wrong pin"

        @transition(to="Billing", when=billing_guard, refused="verify the caller first")
        async def to_billing(self, ctx: RunContext[Desk]) -> None:
            """Call for a question about a bill."""
            ctx.userdata.heading = "Billing"
            if mutation == "body raises":
                _boom()

        @transition(to="Billing" if mutation == "wrong target" else "Tech")
        async def to_tech(self, ctx: RunContext[Desk], topic: str) -> None:
            """Call for a technical problem."""
            ctx.userdata.heading = "Tech"

    class Billing(State[Desk]):
        """Answers billing questions."""

        instructions = "Billing."

        @transition(to="Router")
        async def back_to_router(self, ctx: RunContext[Desk]) -> None:
            """Call when the caller has another question."""
            ctx.userdata.heading = "Router"

    class Tech(State[Desk]):
        """Solves technical problems."""

        instructions = "Tech."

        @transition(to="Router")
        async def back_to_router(self, ctx: RunContext[Desk]) -> None:
            """Call when the caller has another question."""
            ctx.userdata.heading = "Router"

    class Human(State[Desk]):
        """Transfers to a human."""

        instructions = "Human."

    @transition(to="Human")
    async def escalate(ctx: RunContext[Desk]) -> None:
        """Call when the caller asks for a human."""

    flow = Flow("router", context=Desk, initial=Router, states=[Router, Billing, Tech, Human],
                final=[Human], global_transitions=[escalate], tools=[take_note], tiers=TIERS)
    return CorpusFlow(flow, {"Billing": lambda c: c.verified and c.heading == "Billing",
                             "Tech": _heading("Tech")},
                      tools={"lookup": {}, "take_note": {}, "verify": {}},
                      mutations=("missing guard", "wrong target", "body raises",
                                 "guard raises", "tool fails"))


class Item(BaseModel):
    """A line of an order (a nested model parameter)."""

    name: str
    quantity: Annotated[int, Field(ge=1, le=9)] = 1


class Card(BaseModel):
    number: Annotated[str, Field(pattern=r"^[0-9]{4}$")]
    holder: str


def cart_flow(mutation: str | None = None) -> CorpusFlow:
    """A shop: items added as a list parameter with length bounds, a checkout guarded by
    the cart's length, a payment taking a nested model; a side trip to Help and back."""

    class Cart(Context):
        items: list[Item] = []
        paid: bool = False
        heading: str | None = None

    least = {"off-by-one guard": 0}.get(mutation or "", 1)
    guard: Callable[..., bool] | None = {
        "missing guard": None, "guard raises": _boom}.get(
        mutation or "", lambda c: len(c.items) >= least)

    class Shop(State[Cart]):
        """Takes the order."""

        instructions = "Shop."

        @transition(to="Shop")
        async def add(self, ctx: RunContext[Cart],
                      items: Annotated[list[Item], Field(min_length=1, max_length=3)]) -> None:
            """Add items to the cart."""
            ctx.userdata.items = [*ctx.userdata.items, *items][:6]

        @transition(to="Help", returns=True)
        async def ask_help(self, ctx: RunContext[Cart]) -> None:
            """Call when the caller needs help."""

        @transition(to="Done" if mutation == "wrong target" else "Pay", when=guard,
                    refused="the cart is empty")
        async def checkout(self, ctx: RunContext[Cart]) -> None:
            """Call when the caller wants to pay."""
            ctx.userdata.heading = "Pay"
            if mutation == "body raises":
                _boom()

    class Pay(State[Cart]):
        """Takes the payment."""

        instructions = "Pay."

        @transition(to="Done")
        async def pay(self, ctx: RunContext[Cart], card: Card) -> None:
            """Call with the caller's card."""
            ctx.userdata.paid = True
            ctx.userdata.heading = "Done"

        @transition(to="Help", returns=True)
        async def ask_help(self, ctx: RunContext[Cart]) -> None:
            """Call when the caller needs help."""

    class Help(State[Cart]):
        """Helps, then goes back to whoever asked."""

        instructions = "Help."

        @transition(to=RETURN)
        async def helped(self, ctx: RunContext[Cart]) -> None:
            """Call once the caller has been helped."""

    class Done(State[Cart]):
        """Says goodbye."""

        instructions = "Done."

    flow = Flow("cart", context=Cart, initial=Shop, states=[Shop, Pay, Help, Done],
                final=[Done], tiers=TIERS)
    return CorpusFlow(flow, {"Pay": lambda c: len(c.items) >= 1 and c.heading == "Pay",
                             "Done": lambda c: c.paid},
                      mutations=("off-by-one guard", "missing guard", "wrong target",
                                 "body raises", "guard raises"))


def triage_flow(mutation: str | None = None) -> CorpusFlow:
    """A dynamic target (the body picks Urgent or Routine by an argument's value), an
    ordinary tool in one state named like another state's transition, and a State hook
    that writes the Context on every LLM turn."""

    class Case(Context):
        severity: int = 0
        turns: int = 0
        heading: str | None = None
        closed: bool = False

    class Intake(State[Case]):
        """Learns how bad it is."""

        instructions = "Intake."

        async def llm_node(self, chat_ctx: Any, tools: Any, model_settings: Any) -> Any:
            self.context.turns += 1  # a hook refreshing the Context on every turn
            async for chunk in State.default.llm_node(self, chat_ctx, tools, model_settings):
                yield chunk

        @transition(to=["Urgent", "Routine"],
                    when=_boom if mutation == "guard raises" else None)
        async def assess(self, ctx: RunContext[Case],
                         severity: Annotated[int, Field(ge=1, le=5)]) -> str:
            """Call with the severity the caller described, 1 to 5."""
            ctx.userdata.severity = severity
            if mutation == "body raises":
                _boom()
            threshold = 3 if mutation == "off-by-one guard" else 4
            target = "Urgent" if severity >= threshold else "Routine"
            if mutation == "wrong target":
                target = "Routine"
            ctx.userdata.heading = target
            return target

        @function_tool
        async def close(self, ctx: RunContext[Any]) -> str:
            """Note that the caller has nothing more (an ordinary tool here)."""
            if mutation == "tool fails":
                raise RuntimeError("cannot close")
            ctx.userdata.closed = True
            return "noted"

    class Urgent(State[Case]):
        """Handles urgent cases."""

        instructions = "Urgent."

        @transition(to="Closed")
        async def close(self, ctx: RunContext[Case]) -> None:
            """Call when the case is handled."""

    class Routine(State[Case]):
        """Handles routine cases."""

        instructions = "Routine."

        @transition(to="Closed")
        async def close(self, ctx: RunContext[Case]) -> None:
            """Call when the case is handled."""

    class Closed(State[Case]):
        """Says goodbye."""

        instructions = "Closed."

    flow = Flow("triage", context=Case, initial=Intake,
                states=[Intake, Urgent, Routine, Closed], final=[Closed], tiers=TIERS)
    return CorpusFlow(flow, {"Urgent": lambda c: c.severity >= 4 and c.heading == "Urgent",
                             "Routine": lambda c: c.severity < 4 and c.heading == "Routine"},
                      tools={"close": {}},
                      mutations=("off-by-one guard", "wrong target", "body raises",
                                 "guard raises", "tool fails"))


def still_flow(mutation: str | None = None) -> CorpusFlow:
    """No transitions at all: one state with a tool and a hook writing the Context."""

    class Memo(Context):
        said: list[str] = []
        turns: int = 0

    @function_tool
    async def remember(ctx: RunContext[Any], text: str) -> str:
        """Remember something the caller said."""
        if mutation == "tool fails":
            raise RuntimeError("memory full")
        ctx.userdata.said = [*ctx.userdata.said, text][-3:]
        return "remembered"

    class Listen(State[Memo]):
        """Only listens."""

        instructions = "Listen."
        tools = [remember]

        async def on_user_turn_completed(self, turn_ctx: Any, new_message: Any) -> None:
            self.context.turns += 1

    flow = Flow("still", context=Memo, initial=Listen, states=[Listen], tiers=TIERS)
    return CorpusFlow(flow, tools={"remember": {}}, mutations=("tool fails",))


CORPUS: dict[str, Callable[[str | None], CorpusFlow]] = {
    "router": router_flow, "cart": cart_flow, "triage": triage_flow, "still": still_flow,
}
"""Every flow of the corpus by name (each builder takes the mutation to plant, or None)."""
