"""The peer: Pipecat Flows over raw Pipecat, the same turns as :mod:`benchmarks.handoff_turn`.

Runs in its own venv (``make bench-peers`` makes ``.venv-peers`` with the pinned
``pipecat-ai`` and ``pipecat-ai-flows``; Pipecat is never a dependency of handoff) and
imports neither handoff nor LiveKit: only :mod:`benchmarks._common` (standard library).

Each side is a running Pipecat pipeline, ``user context aggregator → ScriptedLLMService →
assistant context aggregator``, with no STT, TTS or transport; a caller line enters as
``LLMMessagesAppendFrame(run_llm=True)`` and the turn ends when the assistant aggregator
commits the text reply (``on_assistant_turn_stopped``). Three nodes in a ring, Ping → Pong →
Pang → Ping, each with an ordinary function (``lookup``) and one to the next node:

- **Pipecat Flows**: a ``FlowManager`` with one ``NodeConfig`` per node; ``lookup`` is a
  node function (``(result, None)``), ``to_<next>`` an edge function
  (``(result, next_node)``);
- **raw Pipecat**: the same functions registered once on the LLM service; ``to_<next>``
  sets the next node's tools and appends its task message on the context, then returns its
  result, so the LLM runs again (what a Pipecat app without Flows writes).

The scripted LLM service (written here from Pipecat's public ``LLMService``) plays the
policy of :mod:`benchmarks._flows`: a line ``go N`` is answered with the transition
function, ``look N`` with ``lookup``, a function result or a new node with a fixed line.
Every turn makes 2 LLM requests on both sides (checked), as on the LiveKit sides.

    .venv-peers/bin/python -m benchmarks.pipecat_flows [--quick] [--json benchmarks/peers.json]
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import statistics
import time
import tracemalloc
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from pipecat.adapters.schemas.function_schema import FunctionSchema
from pipecat.adapters.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    Frame,
    FunctionCallFromLLM,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMMessagesAppendFrame,
    LLMTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import FunctionCallParams, LLMService
from pipecat.workers.base_worker import WorkerParams
from pipecat_flows import FlowManager, FlowsFunctionSchema, NodeConfig

from ._common import (
    ROOT,
    BenchResult,
    add_turn_rows,
    layer_ratio,
    machine,
    paired_diff_ci,
    paired_figures,
)

GREETING = "Hello, I am here. How can I help?"
ANSWER = "The value you asked for is forty-two."
RING = ("Ping", "Pong", "Pang")
KINDS = ("transition", "ordinary")
PEERS_JSON = ROOT / "benchmarks" / "peers.json"


def _next(node: str) -> str:
    return RING[(RING.index(node) + 1) % len(RING)]


def _task(node: str) -> dict[str, str]:
    return {"role": "developer", "content": f"You are {node}. Answer briefly."}


def _lookup_schema() -> FunctionSchema:
    return FunctionSchema(name="lookup", description="Look a value up.",
                          properties={"key": {"type": "string"}}, required=["key"])


def _move_schema(node: str) -> FunctionSchema:
    return FunctionSchema(name=f"to_{_next(node).lower()}",
                          description="Call when the caller says go.", properties={},
                          required=[])


# -- the scripted LLM service ----------------------------------------------------------------
class ScriptedLLMService(LLMService):
    """An instant LLM that plays the benchmarks' policy, through Pipecat's LLMService."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0
        self._answered: set[str] = set()
        self._calls = 0

    def _reply(self, context: LLMContext) -> tuple[str, dict[str, Any]] | str:
        messages = context.get_messages()
        last = messages[-1] if messages else {}
        if last.get("role") == "tool":
            return ANSWER
        caller = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"
                       and str(m.get("content", "")).startswith(("go ", "look "))), None)
        if caller is None or caller in self._answered:
            return GREETING  # a node that just became active speaks first
        self._answered.add(caller)
        if caller.startswith("go "):
            tools = context.tools
            names = [t.name for t in tools.standard_tools] if isinstance(tools, ToolsSchema) else []
            return next(n for n in names if n.startswith("to_")), {}
        return "lookup", {"key": caller.split()[-1]}

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, LLMContextFrame):
            await self.push_frame(frame, direction)
            return
        self.requests += 1
        await self.push_frame(LLMFullResponseStartFrame())
        reply = self._reply(frame.context)
        if isinstance(reply, str):
            await self.push_frame(LLMTextFrame(reply))
        else:
            self._calls += 1
            name, arguments = reply
            await self.run_function_calls([FunctionCallFromLLM(
                function_name=name, tool_call_id=f"call_{self._calls}", arguments=arguments,
                context=frame.context)])
        await self.push_frame(LLMFullResponseEndFrame())


# -- one side: a running pipeline ----------------------------------------------------------
@dataclass
class Side:
    """One contestant: its pipeline worker, its LLM and the turns it took."""

    name: str
    worker: PipelineWorker
    llm: ScriptedLLMService
    context: LLMContext
    replied: asyncio.Event
    task: asyncio.Task[None] | None = None
    flow: FlowManager | None = None
    node: list[str] = field(default_factory=lambda: ["Ping"])
    times: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    cpu: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    requests: dict[str, list[int]] = field(default_factory=lambda: {k: [] for k in KINDS})

    async def say(self, line: str) -> None:
        """The caller's line; returns once the agent's text reply is in the context."""
        self.replied.clear()
        await self.worker.queue_frame(LLMMessagesAppendFrame(
            messages=[{"role": "user", "content": line}], run_llm=True))
        await asyncio.wait_for(self.replied.wait(), 30)

    async def close(self) -> None:
        await self.worker.cancel()
        if self.task is not None:
            await self.task


async def _lookup(key: str) -> str:
    return f"value of {key} is 42"


async def open_side(name: str) -> Side:
    """A running pipeline of ``name`` (``raw Pipecat`` or ``Pipecat Flows``), its opening done."""
    llm = ScriptedLLMService()
    context = LLMContext()
    aggregators = LLMContextAggregatorPair(context)
    assistant = aggregators.assistant()
    pipeline = Pipeline([aggregators.user(), llm, assistant])
    worker = PipelineWorker(pipeline, cancel_on_idle_timeout=False, enable_rtvi=False,
                            idle_timeout_secs=None, check_dangling_tasks=False)
    replied = asyncio.Event()

    @assistant.event_handler("on_assistant_turn_stopped")
    async def _stopped(_aggregator: Any, message: Any) -> None:
        if message.content:
            replied.set()

    side = Side(name, worker, llm, context, replied)
    side.task = asyncio.create_task(worker.run(WorkerParams(loop=asyncio.get_running_loop())))
    if name == "Pipecat Flows":
        flow = FlowManager(llm=llm, context_aggregator=aggregators, worker=worker)
        side.flow = flow
        await flow.initialize(flows_node("Ping", side))
    else:
        raw_pipecat(side)
        await worker.queue_frame(LLMMessagesAppendFrame(messages=[_task("Ping")], run_llm=True))
    await asyncio.wait_for(replied.wait(), 30)
    return side


def raw_pipecat(side: Side) -> None:
    """Raw Pipecat: the functions registered once; a move sets the next node's tools and task."""

    async def lookup(params: FunctionCallParams) -> None:
        await params.result_callback(await _lookup(params.arguments["key"]))

    async def move(params: FunctionCallParams) -> None:
        nxt = _next(side.node[0])
        side.node[0] = nxt
        params.context.set_tools(ToolsSchema(standard_tools=[_lookup_schema(), _move_schema(nxt)]))
        params.context.add_message(_task(nxt))
        await params.result_callback({"status": "moved", "node": nxt})

    side.llm.register_function("lookup", lookup)
    for node in RING:
        side.llm.register_function(f"to_{node.lower()}", move)
    side.context.set_tools(ToolsSchema(standard_tools=[_lookup_schema(), _move_schema("Ping")]))


def flows_node(node: str, side: Side) -> NodeConfig:
    """Pipecat Flows: the node's task, its node function and its edge function.

    ``cancel_on_interruption=True``, as ``register_function`` defaults to on the raw side:
    Flows' own default (False) makes a Pipecat *async* tool, whose result comes back later
    as a developer message, which is not the same work as the raw side's ordinary call.
    """

    async def lookup(args: dict[str, Any], flow_manager: FlowManager) -> tuple[Any, Any]:
        return await _lookup(args["key"]), None

    async def move(args: dict[str, Any], flow_manager: FlowManager) -> tuple[Any, Any]:
        nxt = _next(node)
        side.node[0] = nxt
        return {"status": "moved", "node": nxt}, flows_node(nxt, side)

    return NodeConfig(
        name=node, task_messages=[_task(node)],
        functions=[
            FlowsFunctionSchema(name="lookup", description="Look a value up.",
                                properties={"key": {"type": "string"}}, required=["key"],
                                handler=lookup, cancel_on_interruption=True),
            FlowsFunctionSchema(name=f"to_{_next(node).lower()}",
                                description="Call when the caller says go.", properties={},
                                required=[], handler=move, cancel_on_interruption=True),
        ])


# -- the turns -----------------------------------------------------------------------------
async def _turn(side: Side, kind: str, line: str, record: bool) -> None:
    before, node = side.llm.requests, side.node[0]
    cpu_start = time.thread_time_ns()
    start = time.perf_counter_ns()
    await side.say(line)
    elapsed = time.perf_counter_ns() - start
    cpu = time.thread_time_ns() - cpu_start
    moved = side.node[0] != node
    if moved != (kind == "transition"):
        raise RuntimeError(f"{side.name}: a {kind} turn {'moved' if moved else 'did not move'}")
    if side.flow is not None and side.flow.current_node != side.node[0]:
        raise RuntimeError(f"{side.name}: Flows at {side.flow.current_node}, not {side.node[0]}")
    if record:
        side.times[kind].append(elapsed / 1e3)
        side.cpu[kind].append(cpu / 1e3)
        side.requests[kind].append(side.llm.requests - before)


async def measure(turns: int, warmup: int, seed: int = 8) -> tuple[Side, Side]:
    """``warmup + turns`` rounds: each side takes the same transition turn back to back (who
    goes first drawn per pair), then the same ordinary-function turn."""
    raw = await open_side("raw Pipecat")
    flows = await open_side("Pipecat Flows")
    rng = random.Random(seed)
    try:
        for i in range(warmup + turns):
            if i == warmup:
                gc.collect()
            for kind, line in (("transition", f"go {i}"), ("ordinary", f"look {i}")):
                pair = [raw, flows]
                rng.shuffle(pair)
                for side in pair:
                    await _turn(side, kind, line, i >= warmup)
    finally:
        for side in (raw, flows):
            await side.close()
    return raw, flows


def added(raw: Side, flows: Side, kind: str) -> dict[str, Any]:
    """What Flows adds per ``kind`` turn: the same figures as ``handoff_turn.added``."""
    if raw.requests[kind] != flows.requests[kind]:
        raise RuntimeError(f"{kind}: the two sides made different LLM requests per turn")
    return paired_figures(raw.times[kind], flows.times[kind], raw.cpu[kind], flows.cpu[kind],
                          raw.requests[kind])


# -- memory per live session ---------------------------------------------------------------
async def sessions(batches: int, batch: int) -> dict[str, Any]:
    """Heap per live session: raw and Flows pipelines made in alternating batches, all kept
    running, the traced heap each batch adds; Flows' share is the median of per-batch
    differences (as ``benchmarks.memory`` measures handoff's)."""
    for name in ("raw Pipecat", "Pipecat Flows") * 2:  # warm-up: imports, caches
        await (await open_side(name)).close()
    gc.collect()
    live: list[Side] = []
    grown: dict[str, list[float]] = {"raw Pipecat": [], "Pipecat Flows": []}
    tracemalloc.start()
    try:
        for _ in range(batches):
            for name in grown:
                gc.collect()
                before = tracemalloc.get_traced_memory()[0]
                live.extend([await open_side(name) for _ in range(batch)])
                gc.collect()
                grown[name].append((tracemalloc.get_traced_memory()[0] - before) / batch)
    finally:
        tracemalloc.stop()
        for side in live:
            await side.close()
    diff, lo, hi = paired_diff_ci(grown["raw Pipecat"], grown["Pipecat Flows"])
    return {"raw_heap": statistics.median(grown["raw Pipecat"]),
            "layer_heap": statistics.median(grown["Pipecat Flows"]),
            "handoff_added": diff, "handoff_added_ci95": [lo, hi],
            "batches": batches, "batch": batch}


# -- the result ------------------------------------------------------------------------------
LABELS = {"transition": "transition turn", "ordinary": "ordinary-function turn"}


def run(quick: bool = False) -> BenchResult:
    turns, warmup = (20, 5) if quick else (600, 40)
    raw, flows = asyncio.run(measure(turns, warmup))
    result = BenchResult("pipecat_flows", "Pipecat Flows over raw Pipecat, interleaved A/B",
                         quick=quick)
    for kind in KINDS:
        fig = added(raw, flows, kind)
        result.extra[kind] = fig
        label = LABELS[kind]
        add_turn_rows(result, label, ("raw Pipecat", "Pipecat Flows"), fig)
        ratio, lo, hi = fig["cpu_paired_ratio"]
        result.add(f"{label}: Flows ÷ raw, thread CPU time", layer_ratio(ratio, lo, hi),
                   detail=f"median of per-pair ratios {ratio:.3f}")
    batches, batch = (3, 2) if quick else (10, 20)
    memory = asyncio.run(sessions(batches, batch))
    result.extra["sessions"] = memory
    lo, hi = memory["handoff_added_ci95"]
    result.add("heap per live session: raw Pipecat / Pipecat Flows",
               f"{memory['raw_heap'] / 1024:.1f} / {memory['layer_heap'] / 1024:.1f} KiB",
               detail=f"median over {batches} alternating batches of {batch} running pipelines")
    result.add("Flows adds per live session", round(memory["handoff_added"]), "B",
               detail=f"median of per-batch differences, 95% CI {lo:+,.0f}…{hi:+,.0f} B")
    result.notes.append(
        "No targets: these are the peer's figures, shown beside handoff's. Same scripted "
        "policy, same turn shapes, same statistics as `benchmarks.handoff_turn`.")
    return result


def versions() -> dict[str, str]:
    return {dist: metadata.version(dist) for dist in ("pipecat-ai", "pipecat-ai-flows")}


def main(argv: list[str] | None = None) -> int:
    import argparse
    import logging

    parser = argparse.ArgumentParser(description="Pipecat Flows over raw Pipecat")
    parser.add_argument("--quick", action="store_true", help="a short run (nothing judged)")
    parser.add_argument("--json", type=Path, default=PEERS_JSON,
                        help="where the results go (`python -m benchmarks` renders them)")
    args = parser.parse_args(argv)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    from loguru import logger

    logger.remove()  # Pipecat logs every frame and function call at DEBUG
    info = machine()
    started = time.perf_counter()
    result = run(args.quick)
    result.seconds = round(time.perf_counter() - started, 2)
    print(result.text())
    args.json.write_text(json.dumps({"machine": info, "versions": versions(), "quick": args.quick,
                                     "result": result.to_json()}, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
