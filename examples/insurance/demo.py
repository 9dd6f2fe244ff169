"""`python -m examples.insurance.demo`: one customer through the insurance-quote flow, offline."""

from __future__ import annotations

import asyncio
from typing import Any

from handoff.testing import call

from .._demo import play_scripted
from .flow import flow

CALLER = [
    "I'm 23.",
    "Single.",
    "Sounds good, go ahead.",
    "Could I get 500,000 of coverage with a 2,000 deductible?",
    "That's fine, I'm done.",
]

AGENT_SCRIPT: list[Any] = [
    "Hello! I can get you an insurance quote. How old are you?",
    call("collect_age", age=23),
    "Thanks. Are you single or married?",
    call("collect_marital_status", marital_status="single"),
    "Let me calculate a quote for a 23 year old single customer.",
    call("calculate_quote", age=23, marital_status="single"),
    "Your quote is 225 dollars a month for 250,000 of coverage with a 1,000 dollar deductible. "
    "Would you like to adjust the coverage?",
    call("update_coverage", coverage_amount=500_000, deductible=2_000),
    "With 500,000 of coverage and a 2,000 deductible your premium is 180 dollars a month, "
    "45 less than before. Anything else, or are you ready to finish?",
    call("end_quote"),
    "Thank you for your time! A representative will contact you about your quote. Goodbye.",
]


async def main() -> int:
    run = await play_scripted(flow, CALLER, AGENT_SCRIPT)
    return 0 if run.state == "End" else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
