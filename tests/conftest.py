"""Shared pytest setup: quiet LiveKit's per-tool-error logging in test output.

Fixtures shared by the operations tests (a real redis-server, fresh metric
registries, the call-centre flow with its observers restored) live in
``tests/ops_support.py``, loaded as a plugin.
"""

from __future__ import annotations

import logging

pytest_plugins = ["tests.ops_support"]

logging.getLogger("livekit.agents").setLevel(logging.CRITICAL)
