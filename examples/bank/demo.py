"""`python -m examples.bank.demo`: a caller verified by a side trip with a typed result, offline."""

from __future__ import annotations

import asyncio
from typing import Any

from handoff.testing import call

from .._demo import play_scripted
from .flow import flow

CALLER = [
    "What's on my last statement?",
    "Sure, go ahead.",
    "1991-04-01",
    "Let's try again.",
    "Sorry, 1990-04-01.",
    "Please send it.",
]

AGENT_SCRIPT: list[Any] = [
    "Good morning, this is the bank. How can I help?",
    call("statement"),                                   # refused: not verified yet
    "I need to verify you first.",
    call("verify"),                                      # the side trip starts
    "What is your date of birth?",
    call("identity_checked", date_of_birth="1991-04-01"),  # comes back: not verified
    "That did not match our records. Shall we try again?",
    call("verify"),
    "Your date of birth, please?",
    call("identity_checked", date_of_birth="1990-04-01"),  # comes back: Ann Lee
    "Thank you, Ms Lee, you are verified. Shall I send your statement?",
    call("statement"),
    "Your statement is on its way. Goodbye!",
]


async def main() -> int:
    run = await play_scripted(flow, CALLER, AGENT_SCRIPT)
    return 0 if run.state == "Statement" and run.context.holder == "Ann Lee" else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
