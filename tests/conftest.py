"""Shared pytest setup: quiet LiveKit's per-tool-error logging in test output."""

from __future__ import annotations

import logging

logging.getLogger("livekit.agents").setLevel(logging.CRITICAL)
