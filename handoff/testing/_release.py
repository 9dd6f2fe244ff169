"""Releasing a finished FlowRun (``FlowRun.close``) once the toolkit is done with it."""

from __future__ import annotations

from typing import Any

from ..run import FlowRun


def release(run: FlowRun[Any]) -> None:
    """Close ``run`` (idempotent): the toolkit makes thousands of runs and drops each."""
    run.close()
