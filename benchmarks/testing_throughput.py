"""Testing throughput: hypothesis walks per second on the pure model, and whole
conversations per second through a real AgentSession.

**Walks.** One walk = one hypothesis example: a fresh pure flow run of the call-centre
example (its boolean context fields drawn), then 1-10 steps, each picking one of the
triggers declared from the current state or one that is not valid there, with arguments
from the step's drawn number/float/text by annotation, taken with ``await run.go(...)``;
a refusal is an accepted outcome; after each step the run must be in a declared state
with its log consistent. The walk is drawn as one plan (a shrinkable list of steps); a
second figure draws every step interactively with ``st.data()``. Hypothesis runs in
generate-only mode (no shrinking, no database). Measured as is, and with each finished
run closed (``run.close()`` releases it from the flow's shared ``transitions`` Machine;
a run left open keeps its model there, so ``new_run`` slows down as runs accumulate).
When the testing toolkit's ``FlowStateMachine`` is importable its pure mode is timed too.

**Conversations.** One conversation = the call-centre demo (``examples.callcenter.demo``):
a started AgentSession, the opening, six caller lines, four transitions, two refusals,
tools, with the ScriptedLLM playing the agent side; checked to end in ``Escalation``
with the whole script used.
A raw-LiveKit comparison is the ring conversation (opening + three handoffs + three
tool turns) run both ways, interleaved.
"""

from __future__ import annotations

import asyncio
import importlib
import random
import time
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from livekit.agents import AgentSession

from handoff import Flow, TransitionRefused
from handoff.testing import ScriptedLLM

from ._common import BenchResult, main, median
from ._flows import BenchContext, RawPing, ring_flow, scripted

MAX_STEPS = 10


def _callcenter() -> Any:
    return importlib.import_module("examples.callcenter.flow").flow


def _argument_strategies(flow: Flow[Any]) -> dict[str, st.SearchStrategy[dict[str, Any]]]:
    out = {}
    for edge in flow.edges:
        params = {p.name: st.from_type(p.annotation if p.annotation is not p.empty else str)
                  for p in edge.transition.params}
        out[edge.trigger] = st.fixed_dictionaries(params)
    return out


def _fill(params: list[Any], number: int, real: float, text: str) -> dict[str, Any]:
    """Arguments for a transition from one drawn step (by annotation)."""
    out: dict[str, Any] = {}
    for p in params:
        ann = p.annotation
        out[p.name] = (real if ann is float else number if ann is int
                       else bool(number & 1) if ann is bool else text)
    return out


class _Walker:
    """One walk = one hypothesis example over a pure flow run (see the module docstring)."""

    def __init__(self, flow: Flow[Any], *, release: bool) -> None:
        self.flow = flow
        self.release = release
        self.triggers = sorted({e.trigger for e in flow.edges})
        self.params = {e.trigger: list(e.transition.params) for e in flow.edges}
        self.bools = [n for n, f in flow.context_type.model_fields.items()
                      if f.annotation is bool]
        # per state: the valid triggers, then one not valid there (a refusal to check)
        self.options: dict[str, list[str]] = {}
        for state in flow.states:
            valid = sorted(flow.triggers_from(state))
            invalid = [t for t in self.triggers if t not in valid][:1]
            self.options[state] = valid + invalid
        self.counts = {"walks": 0, "steps": 0, "moves": 0}

    async def step(self, run: Any, trigger: str, arguments: dict[str, Any]) -> None:
        before = run.state
        try:
            await run.go(trigger, **arguments)
            self.counts["moves"] += 1
            if run.log[-1].source != before or run.log[-1].target != run.state:
                raise AssertionError("log and state disagree")
        except TransitionRefused:
            if run.state != before:
                raise AssertionError("a refused move changed the state") from None
        if run.state not in self.flow.states:
            raise AssertionError(f"undeclared state {run.state}")
        self.counts["steps"] += 1

    def done(self, run: Any) -> None:
        if self.release:
            run.close()  # releases the run's model from the flow's shared Machine
        self.counts["walks"] += 1


PLAN = st.tuples(
    st.lists(st.booleans(), min_size=4, max_size=4),  # initial context flags
    st.lists(st.tuples(st.integers(0, 2**16), st.floats(-1e4, 1e4), st.text(max_size=12)),
             min_size=1, max_size=MAX_STEPS),
)


def hypothesis_floor(examples: int) -> float:
    """Examples/s hypothesis manages with the walk's plan strategy and an empty test body."""
    config = settings(max_examples=examples, deadline=None, database=None,
                      phases=[Phase.generate], suppress_health_check=list(HealthCheck),
                      derandomize=True)
    count = {"n": 0}

    @config
    @given(PLAN)
    def test_nothing(plan: Any) -> None:
        count["n"] += 1

    start = time.perf_counter()
    test_nothing()
    return count["n"] / (time.perf_counter() - start)


def random_plan(rng: random.Random) -> Any:
    """A plan shaped like PLAN's, from ``random`` instead of hypothesis."""
    flags = [rng.random() < 0.5 for _ in range(4)]
    steps = [(rng.randrange(2**16), rng.uniform(-1e4, 1e4),
              "".join(rng.choice("abc xyz") for _ in range(rng.randrange(13))))
             for _ in range(rng.randint(1, MAX_STEPS))]
    return flags, steps


def walks_per_second(flow: Flow[Any], walks: int, *, release: bool,
                     per_step: bool = False, plain: bool = False) -> tuple[float, int, int]:
    """(walks/s, steps taken, transitions made) for ``walks`` hypothesis examples.

    By default a walk is drawn as one plan (shrinkable list of steps); ``per_step``
    draws each step with ``st.data()`` as it goes (hypothesis' interactive style);
    ``plain`` makes the same plans with ``random`` (no hypothesis): the model's own speed.
    """
    walker = _Walker(flow, release=release)
    runner = asyncio.Runner()
    args = _argument_strategies(flow)
    choice = {s: st.sampled_from(opts) for s, opts in walker.options.items() if opts}

    async def planned(plan: Any) -> None:
        flags, steps = plan
        run = flow.new_run(flow.context_type(**dict(zip(walker.bools, flags, strict=False))))
        for number, real, text in steps:
            options = walker.options[run.state]
            if not options:
                break
            trigger = options[number % len(options)]
            await walker.step(run, trigger, _fill(walker.params[trigger], number, real, text))
        walker.done(run)

    async def interactive(data: Any) -> None:
        run = flow.new_run(flow.context_type(**{n: data.draw(st.booleans())
                                                 for n in walker.bools}))
        for _ in range(data.draw(st.integers(1, MAX_STEPS))):
            if run.state not in choice:
                break
            trigger = data.draw(choice[run.state])
            await walker.step(run, trigger, data.draw(args[trigger]))
        walker.done(run)

    config = settings(max_examples=walks, deadline=None, database=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck), derandomize=True)

    @config
    @given(PLAN)
    def test_planned(plan: Any) -> None:
        runner.run(planned(plan))

    @config
    @given(st.data())
    def test_interactive(data: Any) -> None:
        runner.run(interactive(data))

    def plain_random() -> None:
        rng = random.Random(8)
        for _ in range(walks):
            runner.run(planned(random_plan(rng)))

    test = plain_random if plain else test_interactive if per_step else test_planned
    try:
        start = time.perf_counter()
        test()
        elapsed = time.perf_counter() - start
    finally:
        runner.close()
    c = walker.counts
    return c["walks"] / elapsed, c["steps"], c["moves"]


def toolkit_walks_per_second(flow: Flow[Any], walks: int) -> float | None:
    """Walks/s of the testing toolkit's generated FlowStateMachine (pure), if present."""
    try:
        machine = importlib.import_module("handoff.testing.machine")
    except ImportError:
        return None
    from hypothesis.stateful import run_state_machine_as_test

    base = machine.FlowStateMachine(flow, mode="pure")
    count = {"walks": 0}

    class Counted(base):  # type: ignore[misc, valid-type]
        def teardown(self) -> None:
            count["walks"] += 1
            super().teardown()

    start = time.perf_counter()
    run_state_machine_as_test(Counted, settings=settings(
        max_examples=walks, stateful_step_count=MAX_STEPS, deadline=None, database=None,
        phases=[Phase.generate], suppress_health_check=list(HealthCheck), derandomize=True))
    return count["walks"] / (time.perf_counter() - start)


DEMO_SHAPE: dict[str, int] = {}


async def _demo_conversation() -> None:
    demo = importlib.import_module("examples.callcenter.demo")
    flow = _callcenter()
    model = ScriptedLLM(demo.AGENT_SCRIPT)
    async with flow.session(llm=model) as run:
        assert run.session is not None
        for line in demo.CALLER:
            await run.session.run(user_input=line)
        if run.state != "Escalation" or model.remaining:
            raise RuntimeError(f"the demo conversation ended in {run.state} with "
                               f"{model.remaining} scripted replies unused")
        DEMO_SHAPE.update(lines=len(demo.CALLER), transitions=len(run.log),
                          refusals=len(run.refusals), requests=len(model.turns))


async def _ring_conversation(side: str, flow: Flow[Any]) -> None:
    lines = ["go 1", "look 1", "go 2", "look 2", "go 3", "look 3"]
    if side == "handoff":
        async with flow.session(llm=scripted()) as run:
            assert run.session is not None
            for line in lines:
                await run.session.run(user_input=line)
            if run.state != "Ping" or len(run.log) != 3:
                raise RuntimeError("ring conversation went wrong (handoff)")
    else:
        async with AgentSession[BenchContext](userdata=BenchContext()) as session:
            opening = await session.start(RawPing(scripted()), capture_run=True)
            await opening
            for line in lines:
                await session.run(user_input=line)
            if session.current_agent.__class__ is not RawPing:
                raise RuntimeError("ring conversation went wrong (raw)")


async def conversations(n: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per conversation: demo (handoff), ring (handoff), ring (raw), interleaved."""
    flow = ring_flow()
    rng = random.Random(8)
    out: dict[str, list[float]] = {"demo": [], "ring handoff": [], "ring raw": []}
    jobs = [("demo", _demo_conversation), ("ring handoff", lambda: _ring_conversation(
        "handoff", flow)), ("ring raw", lambda: _ring_conversation("raw", flow))]
    for i in range(warmup + n):
        rng.shuffle(jobs)
        for name, job in jobs:
            start = time.perf_counter()
            await job()
            if i >= warmup:
                out[name].append(time.perf_counter() - start)
    return out


def run(quick: bool = False) -> BenchResult:
    walks = 50 if quick else 1_000
    result = BenchResult("testing_throughput", "5. Testing throughput", quick=quick)
    def fresh() -> Flow[Any]:
        # runs are not kept by the Flow's Machine, so the example's flow is reused as is;
        # reloading its module here made two call-centre flows for `handoff diagram examples`
        return importlib.import_module("examples.callcenter.flow").flow

    rate, steps, moves = walks_per_second(fresh(), walks, release=False)
    result.add("hypothesis walks/s, pure model (call centre)", round(rate), "walks/s",
               detail=f"{walks} walks of 1-{MAX_STEPS} steps drawn as one plan: {steps} steps, "
                      f"{moves} moves; runs not closed (left on the shared Machine)")
    rate_rel, _, _ = walks_per_second(fresh(), walks, release=True)
    result.add("hypothesis walks/s, each run closed after its walk", round(rate_rel),
               "walks/s", detail="the same walks; run.close() releases the run from the "
                                 "flow's shared Machine")
    floor = hypothesis_floor(walks)
    result.add("hypothesis alone: examples/s of the plan strategy, empty test", round(floor),
               "examples/s", detail="the ceiling any hypothesis walk can reach on this machine")
    rate_plain, _, _ = walks_per_second(fresh(), walks * 3, release=True, plain=True)
    result.add("the same walks from `random` (no hypothesis)", round(rate_plain), "walks/s",
               detail="the pure model's own speed: new_run + steps + checks + close")
    rate_step, _, _ = walks_per_second(fresh(), max(walks // 5, 20), release=True,
                                       per_step=True)
    result.add("hypothesis walks/s, each step drawn with st.data()", round(rate_step),
               "walks/s", detail="interactive draws (trigger, then its arguments) per step; "
                                 "runs closed")
    toolkit = toolkit_walks_per_second(
        fresh(), 20 if quick else 300)
    result.add("toolkit FlowStateMachine walks/s (pure mode)",
               round(toolkit) if toolkit is not None else None, "walks/s",
               detail="handoff.testing.machine; n/a until the testing toolkit is merged"
               if toolkit is None else f"up to {MAX_STEPS} rules per walk, oracle checks")

    n, warmup = (3, 1) if quick else (60, 5)
    times = asyncio.run(conversations(n, warmup))
    demo = 1 / median(times["demo"])
    result.add("whole conversations/s through an AgentSession (call-centre demo)",
               round(demo, 1), "conv/s",
               detail=f"median of {n}: {median(times['demo']) * 1e3:.1f} ms per conversation "
                      "({lines} caller lines, {transitions} transitions, {refusals} refusals, "
                      "{requests} LLM requests)".format(**DEMO_SHAPE))
    ring_h, ring_r = median(times["ring handoff"]), median(times["ring raw"])
    result.add("ring conversation/s: handoff vs raw LiveKit",
               f"{1 / ring_h:.1f} vs {1 / ring_r:.1f} conv/s",
               detail=f"handoff ÷ raw time {ring_h / ring_r:.3f}x; opening + 3 handoffs + 3 "
                      "tool turns, interleaved")
    result.extra = {"walks_per_s": rate, "walks_per_s_released": rate_rel,
                    "walks_per_s_per_step_draws": rate_step, "hypothesis_floor": floor,
                    "walks_per_s_plain_random": rate_plain,
                    "toolkit_walks_per_s": toolkit, "conversation_s": times}
    return result


if __name__ == "__main__":
    main(run)
