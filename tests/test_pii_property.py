"""The pii property test: random conversations never leak a sensitive value to any sink.

Hypothesis draws sensitive values (PINs a field accepts and PINs its pattern rejects,
card numbers in and out of range) and a conversation: caller turns in which the
scripted model sets, replaces, clears and mis-validates the pii fields, copies one into
a plain field, has a tool raise a ``ToolError`` or an exception quoting one, logs one
(in the message and in ``extra``), and takes a transition whose body writes one and
then raises, refuses or completes, or whose guard's refusal text quotes one; an
``on_enter`` raises quoting one; code takes a move with one as its argument
(``run.go`` from a tool); the model passes a PIN the caller said as a tool argument marked
pii (no field holds it); failures take the error transition with a reason quoting one.
The values reach the call only through a lookup table (the model asks by token), as a
caller's spoken digits reach a tool through STT: nothing the model writes carries them,
apart from the PINs passed as pii arguments, which the model writes itself.

After the call, every sink is searched for every value, as bytes:

- the log records of the process at DEBUG, through LiveKit's JSON formatter;
- the spans of an in-memory OpenTelemetry exporter (LiveKit's tracer, its pii filter off,
  and handoff's transition spans);
- the Prometheus registry's text;
- the raw bytes of two SQLite files (checkpoints, sealed; the event log), WAL included;
- the raw values of every key of a real redis-server (checkpoints and event log);
- every request the scripted model received (instructions, messages, tool calls and outputs);
- the event log's events as read back.

The property: zero hits. ``HANDOFF_PII_EXAMPLES`` sets the number of conversations.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit.agents import AgentSession, RunContext, ToolError
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import Field

from handoff import Context, Flow, State, TransitionRefused, function_tool, transition
from handoff.events import EventLog, RedisEventStore, SQLiteEventStore
from handoff.persistence import Checkpointer, RedisStore, SQLiteStore
from handoff.sealing import KeyringSealer
from handoff.telemetry import FlowTelemetry, HandoffMetrics
from handoff.testing import Reply, ScriptedLLM, Turn, call

from .ops_support import RedisServer, exported_spans

EXAMPLES = int(os.environ.get("HANDOFF_PII_EXAMPLES", "12"))

BACKEND: dict[str, Any] = {}
"""Token → sensitive value: what a tool looks up (the model only ever names the token)."""

logger = logging.getLogger("handoff")


class Account(Context):
    holder: str = "Ann"
    topic: str = ""
    hook_fails: bool = False
    pin: str | None = Field(default=None, pattern=r"^[A-Z0-9]{6,16}$",
                            json_schema_extra={"pii": True})
    card: int | None = Field(default=None, ge=10**11, json_schema_extra={"pii": True})


def _known(ctx: RunContext[Account], token: str) -> Any:
    """The value of ``token`` if the Context was ever offered it, else KeyError: handoff
    cannot know a value is sensitive before a pii field is given it (documented), so the
    tools that quote a value quote only those."""
    value = BACKEND[token]
    if str(value) not in ctx.userdata.sensitive_history():
        raise KeyError(token)
    return value


class _Desk(State[Account]):
    instructions = "Help the account holder."

    async def on_enter(self) -> None:
        if self.context.hook_fails:  # counted as a failure; the agent still speaks
            self.context.hook_fails = False
            raise RuntimeError(f"{self.id} could not load the account of PIN {self.context.pin}")
        await super().on_enter()

    @function_tool
    async def set_pin(self, ctx: RunContext[Account], token: str) -> str:
        """Record the caller's PIN (a bad one is rejected by the field's pattern)."""
        ctx.userdata.pin = BACKEND[token]
        return "noted"

    @function_tool
    async def set_card(self, ctx: RunContext[Account], token: str) -> str:
        """Record the caller's card number (out of range: rejected)."""
        ctx.userdata.card = BACKEND[token]
        return "noted"

    @function_tool
    async def forget(self, ctx: RunContext[Account]) -> str:
        """Forget the PIN and the card."""
        ctx.userdata.pin = None
        ctx.userdata.card = None
        return "forgotten"

    @function_tool
    async def arm_hook(self, ctx: RunContext[Account]) -> str:
        """The next state's on_enter fails (quoting the PIN)."""
        ctx.userdata.hook_fails = True
        return "armed"

    @function_tool
    async def note_topic(self, ctx: RunContext[Account], token: str) -> str:
        """Note what the call is about (the caller read a value aloud: a plain field quotes it)."""
        with contextlib.suppress(KeyError):
            ctx.userdata.topic = f"caller read {_known(ctx, token)} aloud"
        return "noted"

    @function_tool
    async def check(self, ctx: RunContext[Account], token: str) -> str:
        """Check a value against the backend: it says no, quoting it (a counted failure)."""
        raise ToolError(f"{_known(ctx, token)} does not match")

    @function_tool
    async def crash(self, ctx: RunContext[Account], token: str) -> str:
        """A tool whose backend fails with an exception quoting the value."""
        raise RuntimeError(f"backend choked on {_known(ctx, token)}")

    @function_tool
    async def audit(self, ctx: RunContext[Account], token: str) -> str:
        """Log the value (message, arguments and extra fields)."""
        with contextlib.suppress(KeyError):
            value = _known(ctx, token)
            logger.debug("audit: caller gave %s", value, extra={"given": value, "raw": [value]})
            logging.getLogger("livekit.agents").info("audit %s", value, extra={"v": str(value)})
        return "logged"

    @function_tool
    async def say_pin(self, ctx: RunContext[Account],
                      pin: Annotated[str, Field(json_schema_extra={"pii": True})]) -> str:
        """The caller said a PIN and the model passes it (a pii argument: no field holds it)."""
        return "heard"

    @function_tool
    async def verify_by_code(self, ctx: RunContext[Account], token: str) -> str:
        """Code moves the flow with the value as a transition argument (``run.go``)."""
        try:
            await self.run.go("verify", pin=BACKEND[token])
        except TransitionRefused as exc:
            return f"not verified: {exc.message}"
        return "verified"


class Desk(_Desk):
    """The desk."""

    @transition(to="Vault", when=lambda c, token, mode="ok": mode != "guard",
                refused=lambda c: f"PIN {c.pin} and card {c.card} are not verified")
    async def unlock(self, ctx: RunContext[Account], token: str, mode: str = "ok") -> None:
        """Open the vault with a PIN (the body writes it, then completes or fails)."""
        ctx.userdata.pin = BACKEND[token]
        if mode == "raise":
            raise RuntimeError(f"vault rejected {BACKEND[token]}")
        if mode == "refuse":
            raise TransitionRefused(f"PIN {BACKEND[token]} is locked")

    @transition(to="Vault", llm=False)
    async def verify(self, ctx: RunContext[Account], pin: str) -> str:
        """Verified by code: the PIN is an argument of the move."""
        ctx.userdata.pin = pin
        return f"verified with {pin}"


class Vault(_Desk):
    """The vault."""

    @transition(to="Desk")
    async def back(self, ctx: RunContext[Account], token: str = "", mode: str = "ok") -> None:
        """Back to the desk, maybe with a card number."""
        if token:
            ctx.userdata.card = BACKEND[token]
        if mode == "raise":
            raise RuntimeError(f"desk rejected {ctx.userdata.card} and {ctx.userdata.pin}")


class Human(_Desk):
    """A person took over after failures."""

    @transition(to="Desk")
    async def resume(self, ctx: RunContext[Account], token: str = "", mode: str = "ok") -> None:
        """Back to the desk."""


@transition(to="Human")
async def to_human(ctx: RunContext[Account], reason: str = "") -> None:
    """Hand the call to a person."""


flow = Flow("pii-property", context=Account, initial=Desk, states=[Desk, Vault, Human],
            global_transitions=[to_human], error_transition="to_human", max_failures=2,
            max_ping_pong=1000, max_transitions=1000)

# -- values and conversations ------------------------------------------------------------
# Shapes nothing else in a sink has (no word, no run of a timestamp's digits, not the
# field's bound 10**11 that its validation error quotes), so a hit is a leak, never a
# coincidence.
good_pins = st.from_regex(r"[A-Z]{2}[0-9]{3}[A-Z]{3}[0-9A-Z]{0,4}", fullmatch=True)
bad_pins = st.from_regex(r"[a-z]{2}[0-9]{3}[a-z]{3}[0-9a-z]{0,4}", fullmatch=True)
good_cards = st.integers(10**11 + 1, 10**12 - 1)
bad_cards = st.integers(-(10**12) + 1, -(10**11))

MOVES = {"Desk": "unlock", "Vault": "back", "Human": "resume"}
"""What a "move" step calls in each state (decided when the model is asked)."""


@dataclass(frozen=True)
class Step:
    """One caller turn: what the model calls (``tool``; ``move`` is the current state's
    transition), with which value's token and, for a move, how its body goes."""

    tool: str
    token: str = ""
    mode: str = "ok"


def _values(kind: str, strategy: st.SearchStrategy[Any], most: int) -> st.SearchStrategy[Any]:
    return st.lists(strategy, min_size=1, max_size=most, unique=True).map(
        lambda drawn: {f"{kind}{i}": v for i, v in enumerate(drawn)})


@st.composite
def conversations(draw: st.DrawFn) -> tuple[dict[str, Any], list[Step]]:
    """(token → value, the steps)."""
    values: dict[str, Any] = {}
    for kind, strategy, most in (("gp", good_pins, 3), ("bp", bad_pins, 2),
                                 ("gc", good_cards, 2), ("bc", bad_cards, 2)):
        values.update(draw(_values(kind, strategy, most)))
    spoken = draw(_values("sp", good_pins, 2))  # said by the caller, passed as an argument
    values.update(spoken)
    tokens = st.sampled_from(sorted(v for v in values if v not in spoken))
    step = st.one_of(
        st.builds(Step, st.sampled_from(["set_pin", "verify_by_code"]),
                  st.sampled_from(sorted(t for t in values if t[1] == "p"))),
        st.builds(Step, st.just("set_card"), st.sampled_from(sorted(t for t in values
                                                                    if t[1] == "c"))),
        st.builds(Step, st.sampled_from(["forget", "arm_hook"])),
        st.builds(Step, st.sampled_from(["note_topic", "check", "crash", "audit"]), tokens),
        st.builds(Step, st.just("say_pin"), st.sampled_from(sorted(spoken))),
        st.builds(Step, st.just("move"), st.sampled_from(["", *sorted(values)]),
                  st.sampled_from(["ok", "ok", "raise", "refuse", "guard"])),
    )
    return values, draw(st.lists(step, min_size=3, max_size=10))


def _reply(step: Step, state: str | None) -> Any:
    args: dict[str, Any] = {}
    name = MOVES.get(state or "", "unlock") if step.tool == "move" else step.tool
    if name == "unlock":  # its token is required: a PIN's, whatever the step drew
        args["token"] = step.token if step.token[1:2] == "p" else "gp0"
    elif name == "say_pin":
        args["pin"] = BACKEND[step.token]  # the model writes the value itself
    elif step.token:
        args["token"] = step.token
    if step.tool == "move":
        args["mode"] = step.mode
    return call(name, **args)


class Plan:
    """The model's side: step ``n``'s call on caller line ``turn n``, then a short line."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.taken: set[int] = set()

    def policy(self, turn: Turn) -> Any:
        line = turn.last_user_text
        if turn.answering_tool or not line.startswith("turn "):
            return "Okay."
        index = int(line.split()[1])
        if index in self.taken:  # a new agent's opening after the line: just speak
            return "Okay."
        self.taken.add(index)
        return Reply(calls=(_reply(self.steps[index], turn.state),))


# -- the sinks ---------------------------------------------------------------------------
@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """LiveKit's tracer on an in-memory exporter, its pii filter off (it records the
    conversation: what handoff showed the model must be clean already)."""
    with exported_spans(allow_pii=True) as exporter:
        yield exporter


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _prompts(llm: ScriptedLLM) -> str:
    """Everything the model was sent: instructions, messages, tool calls and outputs."""
    return "\n".join(json.dumps([turn.instructions, turn.chat_ctx.to_dict(exclude_image=True)],
                                default=str) for turn in llm.turns)


def _redis_dump(url: str) -> str:
    """Every key and value of the server, read by type (nothing compressed)."""
    client = redis.Redis.from_url(url, decode_responses=True)
    out: list[str] = []
    for key in client.scan_iter("*"):
        kind = client.type(key)
        value: Any
        if kind == "string":
            value = client.get(key)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "stream":
            value = client.xrange(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            value = sorted(client.smembers(key))
        else:
            value = f"<{kind}>"
        out.append(json.dumps([key, value], default=str))
    client.close()
    return "\n".join(out)


def _files(directory: Path) -> str:
    """The raw bytes of every file under ``directory`` (databases, WAL, journals)."""
    return "\n".join(p.read_bytes().decode("latin-1") for p in sorted(directory.rglob("*"))
                     if p.is_file())


def _spans_text(exporter: InMemorySpanExporter) -> str:
    return "\n".join(span.to_json(indent=None) for span in exporter.get_finished_spans())


def _hits(values: list[str], sinks: dict[str, str]) -> dict[str, dict[str, str]]:
    """For each sink, each value found in it with the text around its first hit."""
    found: dict[str, dict[str, str]] = {}
    for name, text in sinks.items():
        for value in values:
            at = text.find(value)
            if at >= 0:
                found.setdefault(name, {})[value] = text[max(0, at - 120):at + 80]
    return found


async def _conversation(values: dict[str, Any], steps: list[Step], redis_url: str,
                        workdir: Path, json_logs: io.StringIO,
                        spans: InMemorySpanExporter) -> None:
    BACKEND.clear()
    BACKEND.update(values)
    call_id = f"pii-{os.urandom(4).hex()}"
    sealer = KeyringSealer([("k1", os.urandom(32))])
    metrics = HandoffMetrics(CollectorRegistry())
    telemetry = FlowTelemetry(metrics).install(flow)
    checkpointers = [Checkpointer(store, sealer=sealer, metrics=metrics, forget_on=frozenset())
                     for store in (SQLiteStore(workdir / "checkpoints.db"),
                                   RedisStore(redis_url))]
    event_stores = [SQLiteEventStore(workdir / "events.db"), RedisEventStore(redis_url)]
    event_logs = [EventLog(store).install(flow) for store in event_stores]
    observers = list(flow.observers)
    llm = ScriptedLLM(Plan(steps).policy)
    try:
        async with AgentSession[Account]() as session:
            run = await flow.start(session, context=Account(), llm=llm, call_id=call_id,
                                   wait_opening=True)
            telemetry.track(run)
            for checkpointer in checkpointers:
                checkpointer.track(run, call_id)
            for events in event_logs:
                events.track(run, call_id)
            for index in range(len(steps)):
                await asyncio.wait_for(session.run(user_input=f"turn {index}"), 10)
            await asyncio.wait_for(run.failures.settled(), 10)  # errors counted after a grace
            if run.failover is not None:  # the error state's move and opening reply
                await asyncio.wait_for(run.failover, 10)
                await asyncio.wait_for(session.wait_for_idle(), 10)
            assert run.state == session.current_agent.id
            setting = [values[s.token] for s in steps if s.tool in ("set_pin", "set_card")]
            assert {str(v) for v in setting} <= run.context.sensitive_history(), \
                "a value a tool gave a pii field was not remembered"
        for checkpointer in checkpointers:
            await checkpointer.aclose()
        read_back = []
        for events, store in zip(event_logs, event_stores, strict=True):
            await events.aclose()
            read_back += [json.dumps(e.to_dict(), default=str)
                          for e in await store.events(call_id)]
            await store.aclose()
        assert read_back, "the event log recorded nothing: the search would prove nothing"
        sinks = {
            "logs": json_logs.getvalue(),
            "spans": _spans_text(spans),
            "metrics": generate_latest(metrics.registry).decode(),
            "sqlite": _files(workdir),
            "redis": _redis_dump(redis_url),
            "prompts": _prompts(llm),
            "events": "\n".join(read_back),
        }
    finally:
        flow.observers[:] = [o for o in observers if o not in (telemetry, *checkpointers,
                                                              *event_logs)]
    # a PIN the model itself wrote as a pii argument is in LiveKit's record of the model's
    # output, which these spans keep (allow_pii=True: the integrator granted the exporter
    # the conversation); with LiveKit's default filter it is not (tests/test_pii_arguments.py)
    spoken = {str(v) for k, v in values.items() if k.startswith("sp")}
    texts = [str(v) for v in values.values()]
    leaks = _hits(texts, {k: v for k, v in sinks.items() if k != "spans"})
    leaks.update(_hits([v for v in texts if not any(v in said for said in spoken)],
                       {"spans": sinks["spans"]}))
    assert not leaks, f"sensitive values leaked: {json.dumps(leaks, indent=1)}\nsteps: {steps}"


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(plan=conversations())
def test_no_sensitive_value_reaches_any_sink(
    plan: tuple[dict[str, Any], list[Step]], redis_url: str, json_logs: io.StringIO,
    spans: InMemorySpanExporter,
) -> None:
    values, steps = plan
    json_logs.seek(0)
    json_logs.truncate()
    spans.clear()
    with tempfile.TemporaryDirectory() as workdir:
        asyncio.run(_conversation(values, steps, redis_url, Path(workdir), json_logs, spans))
