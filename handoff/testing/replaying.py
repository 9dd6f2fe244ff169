"""Replaying a walk (a list of attempts) on a pure run, checking each step with the oracle.

    @given(contexts(flow), walks(flow))
    def test_walks(context, walk):
        replay(flow, walk, context)          # raises AssertionError on a violation
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Mapping, Sequence
from typing import Any, TypeVar

from ..context import Context
from ..errors import TransitionRefused
from ..flow import Flow
from ..run import FlowRun
from .oracle import Observation, expect_for, violations
from .strategies import Attempt

C = TypeVar("C", bound=Context)


async def replay_async(
    run: FlowRun[Any],
    walk: Sequence[Attempt],
    *,
    allow_errors: bool = False,
    may_clear: Mapping[str, Collection[str]] | None = None,
) -> None:
    """Attempt each step by code on ``run``; assert the oracle and invariants after each."""
    for i, attempt in enumerate(walk):
        before = Observation.of(run)
        expectation = expect_for(run, attempt)
        with contextlib.suppress(TransitionRefused):
            await run.go(attempt.trigger, **attempt.arguments)
        problems = violations(run.flow, run, attempt, expectation, before,
                              allow_errors=allow_errors, may_clear=may_clear)
        assert not problems, f"step {i + 1} of {list(walk)!r}:\n" + "\n".join(problems)


def replay(
    flow: Flow[C],
    walk: Sequence[Attempt],
    context: C | None = None,
    *,
    allow_errors: bool = False,
    may_clear: Mapping[str, Collection[str]] | None = None,
) -> FlowRun[C]:
    """Replay ``walk`` on a new pure run of ``flow`` (its own event loop); return the run."""
    run = flow.new_run(context)
    try:
        asyncio.run(replay_async(run, walk, allow_errors=allow_errors, may_clear=may_clear))
    finally:
        run.close()
    return run
