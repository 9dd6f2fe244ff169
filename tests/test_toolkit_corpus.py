"""The toolkit on a corpus of app-shaped flows: silent on the correct ones, and a mutation
score on planted bugs.

Every flow of ``tests.flowgen.CORPUS`` is checked by the pure machine, the session machine
and ``explore``: none may report a violation. Then each mutation the flow has a place for
(an off-by-one guard, a missing guard, a wrong target, a body or guard that raises, a tool
that always fails) is planted and the instruments run, cheapest first, until one finds
it. The score is printed and every mutation must be found.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from handoff.testing import FlowStateMachine, explore
from tests.flowgen import CORPUS, CorpusFlow

logging.getLogger("livekit.agents").setLevel(logging.CRITICAL)
pytestmark = pytest.mark.usefixtures("quiet_handoff_logs")

DEPTH = 4


def _settings(n: int, steps: int, shrink: bool) -> settings:
    """``shrink`` off while hunting mutations: finding one is the point, not its shortest
    form (shrinking a session conversation takes minutes)."""
    phases = list(Phase) if shrink else [Phase.explicit, Phase.reuse, Phase.generate]
    return settings(max_examples=n, stateful_step_count=steps, deadline=None, database=None,
                    derandomize=True, suppress_health_check=list(HealthCheck),
                    report_multiple_bugs=False, phases=phases)


def by_explore(c: CorpusFlow, shrink: bool = True) -> None:
    explore(c.flow, depth=DEPTH, entry_conditions=c.entry_conditions).raise_if_failed()


def by_pure_machine(c: CorpusFlow, shrink: bool = True) -> None:
    machine = FlowStateMachine(c.flow, entry_conditions=c.entry_conditions)
    run_state_machine_as_test(machine, settings=_settings(60, 10, shrink))


def by_session_machine(c: CorpusFlow, shrink: bool = True) -> None:
    machine = FlowStateMachine(c.flow, mode="session", entry_conditions=c.entry_conditions,
                               tools=c.tools)
    run_state_machine_as_test(machine, settings=_settings(12, 6, shrink))


INSTRUMENTS: dict[str, Callable[[CorpusFlow, bool], None]] = {
    "explore": by_explore, "pure machine": by_pure_machine, "session machine": by_session_machine,
}
"""Cheapest first: a mutation is found by the first that reports it."""


@pytest.mark.parametrize("instrument", INSTRUMENTS)
@pytest.mark.parametrize("name", CORPUS)
def test_the_correct_flow_has_no_violation(name: str, instrument: str) -> None:
    INSTRUMENTS[instrument](CORPUS[name](None), True)


def found_by(name: str, mutation: str) -> str | None:
    """The first instrument that reports ``mutation`` planted in flow ``name`` (or None)."""
    for instrument, check in INSTRUMENTS.items():
        try:
            check(CORPUS[name](mutation), False)
        except AssertionError:
            return instrument
    return None


def test_planted_mutations_are_found_and_the_score_is_printed(
        capsys: pytest.CaptureFixture[str]) -> None:
    results = {(name, m): found_by(name, m)
               for name, build in CORPUS.items() for m in build(None).mutations}
    found = sum(1 for by in results.values() if by is not None)
    with capsys.disabled():
        print(f"\ntoolkit mutation score: {found}/{len(results)} planted mutations found")
        for (name, mutation), by in results.items():
            print(f"  {name:8} {mutation:18} {by or 'NOT FOUND'}")
    assert found == len(results), [k for k, by in results.items() if by is None]
