"""The benchmarks must keep running: each one's --quick mode, once, and the runner.

These tests check that every benchmark runs and returns well-formed results; they never
assert the figures (timing belongs in `make bench`, not in tests).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

from benchmarks import BENCHMARKS
from benchmarks._common import (
    ROOT,
    BenchResult,
    Row,
    at_least,
    at_most,
    layer_added,
    layer_ratio,
)
from benchmarks.all import main as run_all

PAGE = ROOT / "docs" / "benchmarks.md"


def _well_formed(result: BenchResult, name: str) -> None:
    assert result.name == name
    assert result.title
    assert result.quick
    assert result.rows, "a benchmark must report something"
    for row in result.rows:
        assert isinstance(row, Row)
        assert row.measure
        assert row.value is None or isinstance(row.value, int | float | str)
        assert row.met is None, "--quick judges nothing"
        assert row.shown()
    # the JSON round trip the runner relies on
    again = BenchResult.from_json(json.loads(json.dumps(result.to_json())))
    assert again.rows == result.rows
    assert result.markdown().startswith("### ")


@pytest.mark.parametrize("name", BENCHMARKS)
def test_quick_mode_runs(name: str) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    result = module.run(quick=True)
    _well_formed(result, name)


def test_runner_writes_the_table_and_json(tmp_path: Path) -> None:
    md, js = tmp_path / "bench.md", tmp_path / "results.json"
    status = run_all(["--quick", "--only", "fsm_decision", "--md", str(md), "--json", str(js)])
    assert status == 0
    text = md.read_text()
    assert "## Machine" in text and "## Targets" in text and "FSM decision" in text
    data = json.loads(js.read_text())
    assert data["quick"] is True and not data["failed"]
    assert data["machine"]["cores"] and data["machine"]["python"]
    assert [r["name"] for r in data["results"]] == ["fsm_decision"]
    again = tmp_path / "again.md"
    assert run_all(["--render-only", "--md", str(again), "--json", str(js)]) == 0
    assert again.read_text() == text


def test_every_registered_benchmark_is_on_the_committed_page() -> None:
    """`make bench` wrote the page: each registered benchmark has its section, and the
    peer's section is there (measured, or saying how to measure it)."""
    page = PAGE.read_text()
    missing = [n for n in BENCHMARKS if f"(`{n}`)" not in page]
    assert not missing, f"registered benchmarks missing from {PAGE.name}: {missing}"
    assert "## Against the peer: Pipecat Flows" in page


def test_a_page_of_some_benchmarks_names_the_others(tmp_path: Path) -> None:
    md, js = tmp_path / "bench.md", tmp_path / "results.json"
    peers = tmp_path / "no-peers.json"
    assert run_all(["--quick", "--only", "exploration", "--md", str(md), "--json", str(js),
                    "--peers", str(peers)]) == 0
    text = md.read_text()
    assert "(`exploration`)" in text
    for name in set(BENCHMARKS) - {"exploration"}:
        assert f"- `{name}`: not run" in text
    assert "Not measured in this run: `make bench-peers`" in text


def test_targets_are_judged_on_the_interval_not_the_point() -> None:
    # a median under the target whose interval reaches past it is not met
    assert not at_most(1.03, 1.02) and at_most(1.02, 1.02)
    assert not at_least(1_900, 2_000) and at_least(2_000, 2_000)


def test_a_layer_is_never_reported_faster_than_its_base() -> None:
    assert layer_ratio(0.951, 0.728, 0.999) == "no slower, within 0.0 % (95% CI 0.728-0.999)"
    assert layer_ratio(0.996, 0.986, 1.008).startswith("no slower, within 0.8 %")
    assert layer_ratio(1.03, 1.01, 1.05).startswith("1.030 x (slower")
    assert layer_added(-71, -150, 12) == "no more than +12 µs (95% CI -150…+12)"
    assert layer_added(-206, -229, -171).startswith("no more than +0 µs")
    assert layer_added(54, 27, 78) == "+54 µs (95% CI +27…+78)"


def test_a_page_taken_under_load_says_so() -> None:
    from benchmarks.all import markdown

    loaded = markdown([], {}, {"load_highest": 3.5, "load_limit": 2.0}, False, 1.0)
    quiet = markdown([], {}, {"load_highest": 1.5, "load_limit": 2.0}, False, 1.0)
    assert "**Taken under load**: the 1-minute load average reached 3.50" in loaded
    assert "Taken under load" not in quiet


def test_the_peers_figures_render_beside_handoffs() -> None:
    """`make bench-peers` wrote benchmarks/peers.json; the page shows it in its own column."""
    from benchmarks.peers import PEERS_JSON, peers_section

    peers = json.loads(PEERS_JSON.read_text())
    assert set(peers["versions"]) == {"pipecat-ai", "pipecat-ai-flows"}
    section = peers_section([], peers)
    header = "| | Pipecat Flows over raw Pipecat | handoff over raw LiveKit | handoff's target |"
    assert header in section
    rows = [line for line in section.splitlines() if line.startswith("| transition turn: µs")]
    assert rows and " µs (95% CI " in rows[0].split("|")[2]  # the peer's figure
    assert rows[0].split("|")[3].strip() == "n/a"  # no handoff result given
    assert "Where the two setups differ" in section


def test_the_instruction_count_plays_each_side_and_refuses_a_bad_count(
        capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import instructions

    for side in instructions.SIDES:  # what runs inside valgrind, here without it
        for kind in instructions.KINDS:
            instructions.main(["--play", side, kind, "1"])
    with pytest.raises(SystemExit) as exited:
        instructions.main(["--turns", "0"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")


def test_the_bytecode_counter_counts_what_runs_and_gives_the_trace_back() -> None:
    from benchmarks.bytecodes import OpcodeCounter, group, where

    def work(n: int) -> int:
        return sum(i * i for i in range(n))

    previous = sys.gettrace()

    def other_tracer(frame: object, event: str, arg: object) -> None:
        return None

    sys.settrace(other_tracer)
    try:
        once, twice = OpcodeCounter(), OpcodeCounter()
        with once.on():
            work(10)
        assert sys.gettrace() is other_tracer  # a coverage tool's tracer is put back
        with twice.on():
            work(10)
            work(10)
    finally:
        sys.settrace(previous)
    assert once.ops[work.__code__] > 0 and once.calls[work.__code__] == 1
    assert twice.ops[work.__code__] == 2 * once.ops[work.__code__]
    assert where(work.__code__).startswith("tests/test_benchmarks.py:")
    assert group("livekit/rtc/event_emitter.py:29 emit") == "LiveKit's event delivery"
    assert group("handoff/run.py:407 _on_session_event") == "handoff's own code"
    assert group("asyncio/events.py:31 __init__") == "the rest"


def test_the_bytecode_count_splits_what_handoff_adds_to_an_ordinary_turn(tmp_path: Path) -> None:
    """Counted in a process of its own, as ``make bench`` counts it: in the test process,
    what earlier tests left behind (a tracer provider exporting to a collector that is not
    there, its retries) runs on the loop too, on one side more than another."""
    import subprocess

    from benchmarks import bytecodes

    out = tmp_path / "bytecodes.json"
    subprocess.run([sys.executable, "-m", "benchmarks.bytecodes", "--quick", "--json", str(out)],
                   cwd=ROOT, check=True, capture_output=True)
    result = BenchResult.from_json(json.loads(out.read_text()))
    per_turn = result.extra["per_turn"]
    raw, floor, ours = (per_turn[side]["ordinary"] for side in bytecodes.SIDES)
    assert raw < floor < ours  # a no-op listener costs; handoff costs more than the floor
    assert per_turn["raw LiveKit"]["handoff"] < per_turn["floor"]["handoff"]
    assert result.extra["events_per_turn"]["ordinary"] >= 1
    groups = result.extra["ordinary"]["groups"]
    assert list(groups) == [name for name, _ in bytecodes.GROUPS]
    assert sum(groups.values()) == pytest.approx(ours - raw)  # every added bytecode placed
    assert groups["LiveKit's event delivery"] > 0 and groups["handoff's own code"] > 0
    functions = result.extra["ordinary"]["functions"]
    assert any(f.startswith("livekit/rtc/event_emitter.py:") for f in functions)
    assert not any(f.startswith("/") for f in functions), "file names are machine-independent"
    shown = [r.measure for r in result.rows if r.measure.startswith("— `")]
    assert 1 <= len(shown) <= bytecodes.TOP
    assert all(row.target is None for row in result.rows), "it explains; it judges nothing"
