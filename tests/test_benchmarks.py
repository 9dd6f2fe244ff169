"""The benchmarks must keep running: each one's --quick mode, once, and the runner.

These tests check that every benchmark runs and returns well-formed results; they never
assert the figures (timing belongs in `make bench`, not in tests).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from benchmarks import BENCHMARKS
from benchmarks._common import BenchResult, Row
from benchmarks.all import main as run_all


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
