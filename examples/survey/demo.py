"""`python -m examples.survey.demo`: one candidate screened end to end, offline.

The results row goes to a temporary file (printed at the end), as the original's
``results.csv``.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from handoff.testing import call

from .._demo import play_scripted
from .flow import Screening, flow

CALLER = [
    "Hi Alex, I'm Sam Lee, a backend engineer who loves distributed systems.",
    "It's sam.lee@example.com.",
    "Yes, that's right.",
    "Yes, I can come in three days a week, by subway.",
    "Six years: four at a payments company, two at a startup.",
    "My strength is debugging hard production issues.",
    "I sometimes take on too much. And I prefer working in a team.",
    "No questions, thanks!",
]

AGENT_SCRIPT: list[Any] = [
    "Hi, I'm Alex and I'll be running your screening today. Could you introduce yourself?",
    call("record_intro", name="Sam Lee", intro_notes="backend engineer, distributed systems"),
    "Thanks Sam. What's the best email address to reach you?",
    call("update_email_address", email="sam.lee@example.com"),
    "I have sam.lee@example.com. Is that correct?",
    call("confirm_email_address"),
    "Can you commute to the office three days a week, and how would you get there?",
    call("record_commute_flexibility", can_commute=True, commute_method="subway"),
    "How many years of experience do you have, and where?",
    call("record_experience", years_of_experience=6,
         experience_description="4 years at a payments company, 2 at a startup"),
    "What would you say are your main strengths, weaknesses, and how do you like to work?",
    call("record_strengths", strengths_summary="debugging hard production issues"),
    "Great. And any weaknesses? How do you like to work?",
    [call("record_weaknesses", weaknesses_summary="takes on too much"),
     call("record_work_style", work_style="team_player")],
    "Thank you.",
    # Closing: the evaluation request, then the closing words
    "Strong candidate: relevant experience, commutes, team player. Recommend next round.",
    "That's the end of the interview, thank you for your time! You'll hear back within 3 days.",
    call("end_screening"),
]


async def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        results = Path(folder) / "results.csv"
        run = await play_scripted(flow, CALLER, AGENT_SCRIPT,
                                  context=Screening(filename=str(results)))
        print("── results.csv ──")
        print(results.read_text())
    return 0 if run.state == "Closing" and run.context.evaluation else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
