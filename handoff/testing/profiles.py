"""Hypothesis profiles for flow tests: a fast one for local runs, a thorough one for CI.

    HYPOTHESIS_PROFILE=ci pytest        # thousands of generated conversations
    pytest                              # "handoff-dev": quick, for the edit-test loop

The pytest plugin registers them and loads the one ``HYPOTHESIS_PROFILE`` names
(default ``handoff-dev``); call :func:`register_profiles` yourself without the plugin.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

DEV = "handoff-dev"
CI = "ci"

_SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.data_too_large]


def register_profiles() -> None:
    """Register ``handoff-dev`` (fast) and ``ci`` (thorough, deterministic)."""
    settings.register_profile(
        DEV, max_examples=40, stateful_step_count=12, deadline=None,
        suppress_health_check=_SLOW_IS_FINE,
    )
    settings.register_profile(
        CI, max_examples=1000, stateful_step_count=12, deadline=None,
        derandomize=True, database=None, print_blob=True,
        suppress_health_check=_SLOW_IS_FINE,
    )


def load_profile(default: str = DEV) -> str:
    """Load the profile ``HYPOTHESIS_PROFILE`` names (or ``default``); return its name."""
    register_profiles()
    name = os.environ.get("HYPOTHESIS_PROFILE", default)
    settings.load_profile(name)
    return name
