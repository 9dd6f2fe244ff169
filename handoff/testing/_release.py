"""Releasing a finished FlowRun from its Flow's shared ``transitions`` Machine.

The core adds each run's FSM model to the shared Machine (``add_model``) and never
removes it, so the Machine's model list grows with every run and ``new_run`` slows
down linearly (``add_model`` checks membership in a list). The toolkit makes
thousands of runs, so it releases each one when done. Remove this once the core
releases runs itself (reported to the lead with a failing test).
"""

from __future__ import annotations

from typing import Any

from ..run import FlowRun


def release(run: FlowRun[Any]) -> None:
    """Detach ``run``'s FSM model from the flow's Machine (the run is not used again)."""
    fsm = getattr(run, "_fsm", None)
    models = run.flow.machine.models
    if fsm is not None and models and models[-1] is fsm:
        models.pop()
    elif fsm is not None and fsm in models:
        run.flow.machine.remove_model(fsm)
