"""Helpers the tests of the ported examples share (tests/test_port_*.py)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings

from handoff import Flow
from handoff.testing import FlowDriver, FlowMachineBase, FlowPath

PURE_EXAMPLES = 150
SESSION_EXAMPLES = 25

# No shrinking: a "finds" test only asks whether a counterexample exists (shrinking it
# is what the reader of a real failure wants, and costs minutes on a loaded machine).
FIND = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck),
                derandomize=True, print_blob=False, phases=[Phase.explicit, Phase.generate])


def finds(machine: type[FlowMachineBase], what: str) -> None:
    """Assert that the generated ``machine`` finds a counterexample whose message matches."""
    case: Any = machine.TestCase
    case.settings = FIND
    with pytest.raises(AssertionError, match=what):
        case("runTest").runTest()


def budget(case: Any, examples: int) -> Any:
    """Cap a generated TestCase at ``examples`` (the profile's count when smaller).

    The ``ci`` profile asks 1 000 examples of every test; four ports at that size would
    take most of the CI's 15 minutes, while the transitions are covered deterministically
    by each port's transition cover. The cap keeps each port's suite under a minute.
    """
    case.settings = settings(max_examples=min(examples, settings.default.max_examples))
    return case


async def take_path(flow: Flow[Any], path: FlowPath) -> None:
    """Play one path of a transition cover through a real session: each step as the LLM's
    tool call, or by ``run.go`` for a code-only transition (``llm=False``)."""
    async with FlowDriver(flow) as driver:
        run = driver.run
        for step, tool_call in zip(path.steps, path.tool_calls(), strict=True):
            for key, value in step.setup.items():  # what a tool would have set
                setattr(run.context, key, value)
            if flow.table[run.state][step.trigger].transition.offered:
                await driver.turn(tool_call)
            else:
                await run.go(step.trigger, **step.arguments)
                await driver.settle()
            assert run.state == step.target
        assert [(r.source, r.trigger) for r in run.log] == path.transitions
