"""The pytest plugin, run in a child pytest: fixtures, coverage report and the coverage gate."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

USER_TESTS = '''
import pytest
from handoff.testing import call
from tests.test_toolkit_flows import desk_flow

flow = desk_flow("desk")


@pytest.mark.handoff_flow(flow)
async def test_pure_run(flow_run):
    await flow_run.go("named", name="Ann")
    assert flow_run.state == "Back"


@pytest.mark.handoff_flow(flow)
async def test_llm_session(flow_session):
    run = await flow_session(llm=["Hello.", call("named", name="Bo"), "Hi Bo."])
    await run.session.run(user_input="I am Bo")
    assert run.state == "Back" == run.session.current_agent.id


@pytest.mark.handoff_flow(flow)
async def test_driver(flow_driver):
    driver = await flow_driver()
    await driver.turn(call("hang_up"))
    assert driver.run.state == "Done"
'''

# hand count for the flow above: 6 transitions + 2 guard outcomes; the tests take
# Front.named (twice) and Front.hang_up → 2 of 8 = 25%.


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_user_flow.py").write_text(USER_TESTS)
    (tmp_path / "pytest.ini").write_text(textwrap.dedent("""\
        [pytest]
        asyncio_mode = auto
        asyncio_default_fixture_loop_scope = function
        """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    env.pop("HYPOTHESIS_PROFILE", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "handoff.testing.pytest_plugin",
         "-p", "no:cacheprovider", "-q", "test_user_flow.py", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )


def test_fixtures_coverage_report_and_a_gate_that_passes(tmp_path: Path) -> None:
    done = _pytest(tmp_path, "--handoff-coverage", "--handoff-coverage-min=25")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "handoff transition coverage" in out
    assert ("flow desk: 25.0% (transitions 2/6, guard outcomes 0/2; "
            "3 runs, 2 through a session)") in out
    assert "[x] Front --named--> Back  x2" in out
    assert "[ ] Back --finish--> Done  x0   guard: allowed x0, refused x0" in out
    assert "FAIL" not in out


def test_coverage_gate_fails_the_run_below_the_minimum(tmp_path: Path) -> None:
    below = _pytest(tmp_path, "--handoff-coverage-min=30")
    assert below.returncode == pytest.ExitCode.TESTS_FAILED, below.stdout + below.stderr
    assert "FAIL: handoff coverage flow desk: 25.0% < 30.0%" in below.stdout
    assert "3 passed" in below.stdout  # the tests passed; the gate failed the run


def test_flow_fixture_tells_how_to_name_the_flow(tmp_path: Path) -> None:
    (tmp_path / "test_user_flow.py").write_text("def test_x(flow_run):\n    pass\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "handoff.testing.pytest_plugin",
         "-p", "no:cacheprovider", "-q", "test_user_flow.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode != 0
    assert "@pytest.mark.handoff_flow(flow)" in done.stdout + done.stderr


def _coverage_section(out: str) -> str:
    """The report, from its title to the summary line (which holds the time)."""
    section = out[out.index("handoff transition coverage"):]
    return section[:section.rindex("passed in")]


def test_under_xdist_the_report_and_gate_are_the_serial_runs(tmp_path: Path) -> None:
    serial = _pytest(tmp_path, "--handoff-coverage-min=25")
    spread = _pytest(tmp_path, "-n", "2", "--handoff-coverage-min=25")
    assert serial.returncode == spread.returncode == 0, spread.stdout + spread.stderr
    assert "bringing up nodes" in spread.stdout  # (it did run under xdist)
    assert _coverage_section(spread.stdout) == _coverage_section(serial.stdout)


def test_under_xdist_the_controller_adds_up_every_workers_counts_and_gates(tmp_path: Path) -> None:
    # --dist each runs every test on both workers: each worker counts it all, so the
    # merged counts are twice a serial run's, on the same universe and percentage
    done = _pytest(tmp_path, "-n", "2", "--dist", "each", "--handoff-coverage-min=30")
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout + done.stderr
    assert ("flow desk: 25.0% (transitions 2/6, guard outcomes 0/2; "
            "6 runs, 4 through a session)") in done.stdout
    assert "[x] Front --named--> Back  x4" in done.stdout
    assert "FAIL: handoff coverage flow desk: 25.0% < 30.0%" in done.stdout
    assert "6 passed" in done.stdout  # the tests passed; the gate failed the run
