"""The peer beside handoff on the page: Pipecat Flows over raw Pipecat, handoff over raw LiveKit.

``make bench-peers`` runs :mod:`benchmarks.pipecat_flows` in its own venv (Pipecat is never a
dependency of handoff) and writes :data:`PEERS_JSON`; ``python -m benchmarks`` then renders
it here, beside the figures of its own ``handoff_turn`` and ``memory`` benchmarks. This
module reads JSON only: it imports neither Pipecat nor LiveKit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._common import ROOT, BenchResult, layer_added, layer_ratio

PEERS_JSON = ROOT / "benchmarks" / "peers.json"
HOW = "`make bench-peers` (then `make bench` renders it)"

DIFFERENCES = (
    "**Framework under the layer.** Pipecat Flows sits on a running Pipecat pipeline (user "
    "context aggregator → scripted LLM service → assistant context aggregator), fed text "
    "with `LLMMessagesAppendFrame`, a turn ending when the assistant aggregator commits the "
    "reply; handoff sits on a text-mode LiveKit `AgentSession` fed "
    "with `session.run(user_input=...)`. Neither side has STT, TTS or a transport. A "
    "LiveKit turn costs several times a Pipecat turn, so compare the *added* µs, not the "
    "ratios.",
    "**The transition.** Flows: an edge function returns `(result, next_node)`; Flows "
    "appends the next node's task message, swaps its functions and runs the LLM. Raw Pipecat "
    "twin: the function handler sets the next node's tools and appends its task message "
    "on the context, then returns its result so the LLM runs. handoff: a State's "
    "`@transition`; raw LiveKit twin: a `@function_tool` returning the next `Agent`, "
    "whose `on_enter` calls `generate_reply()`, carrying the last 6 messages.",
    "**Context carried.** Flows appends to the one context (its default `APPEND` "
    "strategy); handoff carries the last 6 user/assistant messages into the new agent, "
    "as its raw twin does.",
    "**Function calls.** Ordinary (synchronous) function calls on both Pipecat sides: "
    "the Flows functions set `cancel_on_interruption=True`, which raw Pipecat's "
    "`register_function` defaults to. Flows' own default (False) makes them Pipecat async "
    "tools, whose results come back later as developer messages.",
    "**The same policy.** Both scripted LLMs answer a caller line `go N` with the "
    "transition tool, `look N` with `lookup`, a tool result or a new node with a fixed "
    "line; each turn makes 2 LLM requests on all four sides (checked).",
    "**Memory.** Per live session: raw Pipecat = a running `PipelineWorker` with its "
    "processors and context; Flows adds its `FlowManager` at the first node. handoff: a "
    "started `AgentSession` with raw LiveKit agents, handoff adds the run. Both are the "
    "median of alternating batches under tracemalloc, opening reply done.",
)


def _fig(extra: dict[str, Any], key: str, kind: str) -> str:
    fig = extra.get(kind)
    if not fig:
        return "n/a"
    if key == "times":
        return (f"{fig['raw_us']['median'] / 1e3:.2f} / {fig['layer_us']['median'] / 1e3:.2f} ms "
                f"({fig['turns']} pairs)")
    value, lo, hi = fig[key]
    if key.endswith("ratio"):
        return layer_ratio(value, lo, hi)
    return layer_added(value, lo, hi)


def _session(extra: dict[str, Any]) -> str:
    sessions = extra.get("sessions")
    if not sessions:
        return "n/a"
    lo, hi = sessions.get("handoff_added_ci95", (None, None))
    ci = f" (95% CI {lo:+,.0f}…{hi:+,.0f})" if lo is not None else ""
    return f"{sessions['handoff_added']:+,.0f} B{ci}"


def comparison(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """The side-by-side table: Pipecat Flows over raw Pipecat | handoff over raw LiveKit."""
    rows = [
        ("transition turn: base / layer, median", "transition", "handoff", "times", ""),
        ("transition turn: µs added, thread CPU (median of per-pair differences)",
         "transition", "handoff", "cpu_added_us", "≤ 100 µs"),
        ("transition turn: µs added, wall clock", "transition", "handoff", "added_us", ""),
        ("transition turn: layer ÷ base, thread CPU", "transition", "handoff",
         "cpu_paired_ratio", "≤ 1.01"),
        ("ordinary-tool turn: base / layer, median", "ordinary", "ordinary", "times", ""),
        ("ordinary-tool turn: µs added, thread CPU", "ordinary", "ordinary", "cpu_added_us",
         "≤ 30 µs"),
        ("ordinary-tool turn: µs added, wall clock", "ordinary", "ordinary", "added_us", ""),
        ("ordinary-tool turn: layer ÷ base, thread CPU", "ordinary", "ordinary",
         "cpu_paired_ratio", ""),
    ]
    lines = ["| | Pipecat Flows over raw Pipecat | handoff over raw LiveKit | handoff's target |",
             "|---|---:|---:|---|"]
    for label, peer_kind, our_kind, key, target in rows:
        lines.append(f"| {label} | {_fig(theirs, key, peer_kind)} | "
                     f"{_fig(ours.get('turn', {}), key, our_kind)} | {target} |")
    lines.append(f"| heap added per live session | {_session(theirs)} | "
                 f"{_session(ours.get('memory', {}))} | ≤ 2 KB |")
    return lines


def peers_section(results: Sequence[BenchResult], peers: dict[str, Any] | None) -> str:
    """The page's section on the peer (says how to measure it when it was not)."""
    parts = ["## Against the peer: Pipecat Flows", ""]
    if not peers:
        parts.append(f"Not measured in this run: {HOW} writes `benchmarks/peers.json`.")
        return "\n".join(parts)
    by_name = {r.name: r for r in results}
    ours = {"turn": by_name["handoff_turn"].extra if "handoff_turn" in by_name else {},
            "memory": by_name["memory"].extra if "memory" in by_name else {}}
    theirs = BenchResult.from_json(peers["result"])
    info = peers.get("machine", {})
    versions = ", ".join(f"{k} {v}" for k, v in peers.get("versions", {}).items())
    parts += [
        f"Measured by {HOW} on {info.get('date', '?')} ({versions}; load average "
        f"{info.get('load_average', '?')}{'; --quick: not judged' if peers.get('quick') else ''}"
        "), in its own venv and process; handoff's column is this page's run. Each column "
        "is its layer over its own base, interleaved A/B in one process, pairs back to back.",
        "",
        *comparison(ours, theirs.extra),
        "",
        "Where the two setups differ:",
        "",
        *(f"- {d}" for d in DIFFERENCES),
        "",
        theirs.markdown(),
    ]
    return "\n".join(parts)
