"""The conversations the benchmarks run, written twice: with handoff and with raw LiveKit.

Three states in a ring, ``Ping → Pong → Pang → Ping``, each with one transition to the
next and one ordinary tool (``lookup``). The raw LiveKit twin is written the idiomatic LiveKit
way: a ``@function_tool`` that returns the next ``Agent`` instance, built with the
last few messages of the old agent's chat context, and an ``on_enter`` that calls
``session.generate_reply()``. Both sides carry the same history (the last
``HISTORY`` user/assistant messages) so they do the same work.

The scripted model plays one policy for both sides: a user line "go …" is answered
by the transition tool, a user line "look …" by the ``lookup`` tool, a tool output
or an agent that just became active by a short text.
"""

from __future__ import annotations

from typing import Any

from livekit.agents import Agent, RunContext, function_tool, llm

from handoff import Context, Flow, State, transition
from handoff.testing import ScriptedLLM, Turn, call
from handoff.testing.scripted import ReplyLike

HISTORY = 6
GREETING = "Hello, I am here. How can I help?"
ANSWER = "The value you asked for is forty-two."


class BenchContext(Context):
    """The context of the benchmark calls."""

    caller: str | None = None
    lookups: int = 0


def make_policy() -> Any:
    """One policy per ScriptedLLM: it remembers which user lines it already answered."""
    answered: set[str] = set()

    def policy(turn: Turn) -> ReplyLike:
        if turn.answering_tool:
            return ANSWER
        last_user = None
        for item in reversed(turn.chat_ctx.items):
            if item.type == "message" and item.role == "user":
                last_user = item
                break
        if last_user is None or last_user.id in answered:
            return GREETING  # the new agent speaks first (on_enter)
        answered.add(last_user.id)
        text = last_user.text_content or ""
        if text.startswith("go"):
            name = next(n for n in turn.tool_names if n.startswith("to_"))
            return call(name)
        if text.startswith("look"):
            return call("lookup", key=text.split()[-1])
        return ANSWER

    return policy


def scripted() -> ScriptedLLM:
    return ScriptedLLM(make_policy())


# -- handoff ---------------------------------------------------------------------------
# A ring of three states (Ping → Pong → Pang → Ping): every step is a real handoff, and,
# unlike a two-state ping-pong, it is not a loop the flow's failure policy would stop
# (that check still runs on every transition). ``max_transitions`` is lifted because a
# benchmark makes hundreds of moves in one call.
UNLIMITED = 10**9


async def _lookup(ctx: RunContext[BenchContext], key: str) -> str:
    ctx.userdata.lookups += 1
    return f"value of {key} is 42"


RING_NAMES = ("Ping", "Pong", "Pang")


def ring_states(say: str | None = None) -> list[type[State[BenchContext]]]:
    """Ping → Pong → Pang → Ping, each with an ordinary ``lookup`` tool and one transition to
    the next (``say=`` on every transition when given: the bridge-line benchmark)."""
    classes: list[type[State[BenchContext]]] = []
    for i, name in enumerate(RING_NAMES):
        nxt = RING_NAMES[(i + 1) % len(RING_NAMES)]

        # ``self`` unannotated, as in RawAgent.lookup: LiveKit evaluates every annotation
        # of a tool at each call, so an extra one would be work the raw twin does not do
        async def lookup(self, ctx: RunContext[BenchContext], key: str) -> str:
            """Look a value up."""
            return await _lookup(ctx, key)

        async def move(self: Any, ctx: RunContext[BenchContext]) -> None:
            """Call when the caller says go."""

        trigger = f"to_{nxt.lower()}"
        body: dict[str, Any] = {
            "__doc__": f"State {i + 1} of the ring.",
            "__module__": __name__,
            "history": f"last:{HISTORY}",
            "instructions": f"You are {name}. Answer briefly.",
            "lookup": function_tool(lookup),
            trigger: transition(to=nxt, name=trigger, say=say)(move),
        }
        classes.append(type(name, (State,), body))
    return classes


RING = ("to_pong", "to_pang", "to_ping")


def ring_flow(say: str | None = None) -> Flow[BenchContext]:
    states = ring_states(say)
    return Flow("ring", context=BenchContext, initial=states[0], states=states,
                max_transitions=UNLIMITED)


# -- raw LiveKit -----------------------------------------------------------------------
def carried(old: llm.ChatContext) -> llm.ChatContext:
    """The last HISTORY user/assistant messages, as an idiomatic LiveKit handoff passes on."""
    messages: list[llm.ChatItem] = [
        i for i in old.items if i.type == "message" and i.role in ("user", "assistant")
    ]
    return llm.ChatContext(messages[-HISTORY:])


class RawAgent(Agent):
    """The raw LiveKit twin of a State: instructions, a tool, a handoff tool, on_enter."""

    prompt = ""

    def __init__(self, model: llm.LLM, chat_ctx: llm.ChatContext | None = None) -> None:
        super().__init__(instructions=self.prompt, chat_ctx=chat_ctx, llm=model)
        self.model = model

    async def on_enter(self) -> None:
        self.session.generate_reply()

    @function_tool
    async def lookup(self, ctx: RunContext[BenchContext], key: str) -> str:
        """Look a value up."""
        return await _lookup(ctx, key)


class RawPing(RawAgent):
    prompt = "You are Ping. Answer briefly."

    @function_tool
    async def to_pong(self, ctx: RunContext[BenchContext]) -> Agent:
        """Call when the caller says go."""
        return RawPong(self.model, chat_ctx=carried(self.chat_ctx))


class RawPong(RawAgent):
    prompt = "You are Pong. Answer briefly."

    @function_tool
    async def to_pang(self, ctx: RunContext[BenchContext]) -> Agent:
        """Call when the caller says go."""
        return RawPang(self.model, chat_ctx=carried(self.chat_ctx))


class RawPang(RawAgent):
    prompt = "You are Pang. Answer briefly."

    @function_tool
    async def to_ping(self, ctx: RunContext[BenchContext]) -> Agent:
        """Call when the caller says go."""
        return RawPing(self.model, chat_ctx=carried(self.chat_ctx))


# -- generated flows (scale of definitions, walks) -------------------------------------
def generated_states(n: int) -> list[type[State[BenchContext]]]:
    """``n`` State classes in a ring with skip edges: state i → i+1 and i → i+7.

    The last state is final and has no way out; every state reaches it, so the flow
    validates. Each other state has two transitions with docstrings, as real states do.
    """
    classes: list[type[State[BenchContext]]] = []
    for i in range(n):
        nxt = f"S{(i + 1) % n}"
        skip = f"S{(i + 7) % n}"

        async def step(self: Any, ctx: RunContext[BenchContext]) -> None:
            """Call when the caller moves on."""

        async def jump(self: Any, ctx: RunContext[BenchContext]) -> None:
            """Call when the caller skips ahead."""

        body: dict[str, Any] = {
            "__doc__": f"State {i} of a generated flow.",
            "instructions": f"You are state {i}.",
            "__module__": __name__,
        }
        if i != n - 1:
            body[f"step_{i}"] = transition(to=nxt, name=f"step_{i}")(step)
            body[f"jump_{i}"] = transition(to=skip, name=f"jump_{i}")(jump)
        classes.append(type(f"S{i}", (State,), body))
    return classes


def build_flow(classes: list[type[State[BenchContext]]], name: str = "generated"
               ) -> Flow[BenchContext]:
    return Flow(name, context=BenchContext, initial=classes[0], states=classes,
                final=[classes[-1]], max_transitions=UNLIMITED)


def generated_flow(n: int) -> Flow[BenchContext]:
    return build_flow(generated_states(n), f"generated{n}")
