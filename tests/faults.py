"""The faults the failure tests inject into an ordinary tool."""

from __future__ import annotations

import asyncio

HANG = 5.0
"""Seconds a hanging tool sleeps: far past any ``tool_timeout`` of the tests."""


async def misbehave(mode: str, *, raise_on: str, hang_on: str, error: str) -> None:
    """Raise ``RuntimeError(error)`` when ``mode`` is ``raise_on``, hang when it is
    ``hang_on``; otherwise return at once."""
    if mode == raise_on:
        raise RuntimeError(error)
    if mode == hang_on:
        await asyncio.sleep(HANG)
