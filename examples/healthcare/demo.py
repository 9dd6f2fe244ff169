"""`python -m examples.healthcare.demo`: a known patient books an appointment and pays a bill, offline.

Mary Jane asks for an appointment: reception hands over to ``Authentication``, whose
``TaskGroup`` runs LiveKit's ``GetNameTask`` and ``GetDOBTask`` and stops there (a known
patient: ``ProfileFound``); ``Scheduling`` lists the doctors her insurance covers, takes
the doctor, a free slot and the reason. Back at reception she pays part of her bill:
``Billing`` tells her the balance, ``Payment`` takes her card through LiveKit's
``GetCreditCardTask`` (four sub-tasks of its own), and reception tells her what was
charged. The clinic's records are seeded so the balance and the free slots are the same
every run.
"""

from __future__ import annotations

import asyncio
import random
import re
from datetime import date, datetime
from typing import Any

from handoff.testing import ScriptedLLM, Turn, call

from .._demo import play
from .database import FakeDatabase
from .flow import Visit, flow

TODAY = date(2026, 12, 1)
SLOT = datetime(2026, 12, 3, 9, 30).isoformat()  # Dr. Jekyll's first slot, two days on

CALLER = [
    "Hi, I'd like to book an appointment.",
    "Mary Jane.",
    "June 10th, 2001.",
    "Dr. Jekyll, please.",
    "The 9:30 one on December 3rd.",
    "A yearly check-up.",
    "Thanks. I'd also like to pay part of my bill.",
    "50 dollars.",
    "4111 1111 1111 1111",
    "12/35",
    "123",
    "Mary Jane",
]

# What the agent side says to each caller line, by the agent (or task) that answers it.
SAYS = {
    "Reception": "Welcome to the healthcare clinic, how can I help you?",
    "get_name_task": "Before we book, may I have your first and last name?",
    "get_dob_task": "Thanks. What is your date of birth?",
    "Scheduling": "Your insurance is accepted by Dr. Henry Jekyll and Dr. Edward Hyde. Which one?",
    "get_card_number_task": "What is the card number?",
    "get_expiration_date_task": "And the expiration date?",
    "get_security_code_task": "And the security code?",
    "get_name_task#card": "And the cardholder's name?",
}

# What an agent says after a tool's answer, by the caller's line
ANSWERS = {
    ("Scheduling", "the 9:30 one on december 3rd."): "And what is the reason for your visit?",
    ("Scheduling", "dr. jekyll, please."):
        "Dr. Jekyll is free December 3rd at 9:30, December 5th at 14:30 or December 8th at 11.",
}

# (agent, words in the caller's line) → the tool call the model makes
CALLS: list[tuple[str, str, Any]] = [
    ("Reception", "appointment", call("schedule_appointment")),
    ("get_name_task", "mary jane", call("update_name", first_name="Mary", last_name="Jane")),
    ("get_dob_task", "2001", call("update_dob", year=2001, month=6, day=10)),
    ("get_phone_number_task", "555", call("update_phone_number", phone_number="5551234")),
    ("get_insurance_task", "anthem", call("record_health_insurance", insurance="Anthem")),
    ("Scheduling", "jekyll", call("confirm_doctor_selection", selected_doctor="Dr. Henry Jekyll")),
    ("Scheduling", "9:30", call("schedule_appointment", appointment_time=SLOT)),
    ("Scheduling", "check-up", call("confirm_visit_reason", visit_reason="yearly check-up")),
    ("Reception", "bill", call("handle_billing")),
    ("Billing", "50", call("confirm_payment_proceeds", amount=50.0)),
    ("get_card_number_task", "4111", call("update_card_number", card_number="4111111111111111")),
    ("get_expiration_date_task", "12/35", call("update_expiration_date", expiration_month=12,
                                               expiration_year=35)),
    ("get_security_code_task", "123", call("update_security_code", security_code="123")),
]


def _instruction(turn: Turn) -> str:
    """The instructions code gave this reply (``generate_reply(instructions=...)``)."""
    last = turn.chat_ctx.items[-1] if turn.chat_ctx.items else None
    if last is not None and last.type == "message" and last.role == "system":
        return last.text_content or ""
    return ""


def _from_instruction(said: str) -> str | None:
    """What the model makes of the outcome a state was told to report."""
    if "appointment has been made" in said:
        return "You're booked with Dr. Henry Jekyll on December 3rd at 9:30. Anything else?"
    if charged := re.search(r"ending in (\d+) has been successfully charged \$(\d+\.?\d*)\. "
                            r"Remaining balance: \$(\d+\.?\d*)", said):
        card, amount, left = charged.groups()
        return f"Your card ending in {card} was charged ${amount}; ${left} remains. Anything else?"
    if balance := re.search(r"outstanding balance is \$(\d+\.?\d*)", said):
        return f"Your outstanding balance is ${balance.group(1)}. Would you like to pay it now?"
    return None


def _last_call(turn: Turn) -> str:
    calls = [item.name for item in turn.chat_ctx.items if item.type == "function_call"]
    return calls[-1] if calls else ""


def agent_side(turn: Turn) -> Any:
    """The scripted model: a tool call when the caller's line asks for one, else a line."""
    agent = turn.agent_id or ""
    text = turn.last_user_text.lower()
    if (reply := _from_instruction(_instruction(turn))) is not None:
        return reply
    if turn.answering_tool and _last_call(turn).startswith("update_"):
        return "Got it."  # a task's tool answered
    if not turn.answering_tool:
        for who, words, tool_call in CALLS:
            if who == agent and words in text:
                return tool_call
        if agent == "get_name_task" and "cardholder" in turn.instructions.lower():
            if "mary jane" in text:
                return call("update_name", first_name="Mary", last_name="Jane")
            return SAYS["get_name_task#card"]
    return ANSWERS.get((agent, text), SAYS.get(agent, "Okay."))


def seeded_visit() -> Visit:
    """A call whose records are the same every run (balances and slots)."""
    return Visit().use_database(FakeDatabase(rng=random.Random(2026), today=TODAY))


async def main() -> int:
    print("LLM: offline — the agent side is played by handoff.testing.ScriptedLLM "
          "(deterministic); the caller's lines are scripted.")
    run = await play(flow, CALLER, llm=ScriptedLLM(agent_side), context=seeded_visit())
    booked = run.context.database.get_patient_by_name("Mary Jane") or {}
    print(f"── appointments on file: {booked.get('appointments')}")
    return 0 if run.context.card_last_four == "1111" and booked.get("appointments") else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
