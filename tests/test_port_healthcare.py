"""The healthcare port (LiveKit Agents) tested with handoff.testing, pure and session.

Its LiveKit tasks run for real here: the authentication ``TaskGroup`` (a known patient
stops at the date of birth; a new one gives phone and insurance too),
``GetCreditCardTask`` in ``Payment``, ``GetInsuranceTask`` from ``update_insurance``.
The generated machines drive the flow's declared moves; the tasks, which need a caller
to talk to, are driven by the scripted conversations below. Also the demo, a cover of
every transition, the original's gaps (named in examples/healthcare/flow.py) and a
planted off-by-one guard that ``explore`` finds.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import strategies as st

from examples.healthcare import demo
from examples.healthcare import visit as visit_module
from examples.healthcare.billing import Billing
from examples.healthcare.database import FakeDatabase
from examples.healthcare.flow import Visit, flow
from handoff import Flow, RunContext, TransitionRefused, transition
from handoff.testing import (
    FlowPath,
    FlowPaths,
    FlowStateMachine,
    ScriptedLLM,
    Turn,
    call,
    explore,
    load_profile,
    settle,
    transition_cover,
)
from handoff.validate import check

from .ports_support import PURE_EXAMPLES, budget, take_path

load_profile()
logging.getLogger("livekit.agents").setLevel(logging.CRITICAL)

ENTRY = {
    "Scheduling": lambda c: c.patient_name is not None,
    "Modifying": lambda c: c.patient_name is not None,
    "Billing": lambda c: c.patient_name is not None,
    "Payment": lambda c: (c.payment_amount is not None and c.balance is not None
                          and 0 < c.payment_amount <= c.balance),
}
KNOWN = {"patient_name": "Mary Jane", "insurance": "Anthem", "date_of_birth": date(2001, 6, 10),
         "phone_number": "18005882300"}
OWES = {**KNOWN, "balance": 120.5}
PATIENTS = {"patient_name": st.sampled_from([None, "Mary Jane", "Peter Parker"]),
            "insurance": st.sampled_from([None, "Anthem", "Aetna"])}

TestHealthcareModel = budget(FlowStateMachine(
    flow, entry_conditions=ENTRY, context_overrides=PATIENTS).TestCase, PURE_EXAMPLES)
# No generated session machine (a gap, named). Tried again after two hangs around tasks
# were fixed (settle() with a body awaiting a task; a move asked for by an on_enter
# before AgentSession.start returned): its random steps soon reach Transfer, whose
# WarmTransferTask needs a LiveKit job context and a SIP trunk, and fail there by
# design; whether the earlier hang with Payment's card task is gone is not shown.
# Session mode is covered by the conversations and the session cover below, which
# take every transition but the three NOT_IN_SESSION names, through real LiveKit tasks.


def test_the_port_passes_check_strict() -> None:
    assert check(flow, strict=True) == []


def test_the_demo_books_and_pays() -> None:
    assert asyncio.run(demo.main()) == 0


SLOT = datetime(2026, 12, 3, 9, 30)


def records_with_an_appointment() -> FakeDatabase:
    """The clinic's records, seeded, with Mary Jane booked at SLOT (Modifying needs one)."""
    db = FakeDatabase(rng=random.Random(1), today=demo.TODAY)
    db.add_appointment("Mary Jane", {"doctor_name": "Dr. Henry Jekyll",
                                     "appointment_time": SLOT, "visit_reason": "check-up"})
    return db


SIP = {"LIVEKIT_SIP_OUTBOUND_TRUNK": "ST_test", "LIVEKIT_SUPERVISOR_PHONE_NUMBER": "+12003004000"}


@pytest.fixture(autouse=True)
def sip_trunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIP trunk is configured (``transfer_to_human`` refuses without one), in every
    test here, the generated machines' included."""
    for name, value in SIP.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def clinic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every new call's records hold an appointment."""
    monkeypatch.setattr(visit_module, "new_records", records_with_an_appointment)


@pytest.fixture(scope="module")
def cover() -> FlowPaths:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(visit_module, "new_records", records_with_an_appointment)
        for name, value in SIP.items():
            patch.setenv(name, value)
        return transition_cover(
            flow,
            setup={"appointment_requested": KNOWN, "modification_requested": KNOWN,
                   "billing_requested": KNOWN, "confirm_payment_proceeds": {"balance": 120.5},
                   "confirm_visit_reason": {**KNOWN, "selected_doctor": "Dr. Henry Jekyll",
                                            "appointment_time": "2026-12-03T09:30:00"},
                   "payment_made": {"card_last_four": "1111"}},
            arguments={"confirm_payment_proceeds": {"amount": 20.0},
                       "confirm_visit_reason": {"visit_reason": "check-up"}},
            argument_overrides={"confirm_appointment_selection": {
                "selected_appointment_time": st.just(str(SLOT))}},
        )


def test_the_cover_takes_every_transition(cover: FlowPaths) -> None:
    assert cover.missing == {}, cover.missing


async def test_every_transition_on_a_pure_run(cover: FlowPaths, clinic: None) -> None:
    """Every path of the cover on the pure model (the transfer and the payment's ends
    included, which the session cover leaves out), and payment_made refused without a card."""
    for path in cover:
        run = flow.new_run()
        await path.replay(run)
        assert run.state == path.target
        run.close()
    run = flow.new_run(Visit(**OWES, payment_amount=20.0))
    await run.go("billing_requested")
    await run.go("confirm_payment_proceeds", amount=20.0)
    with pytest.raises(TransitionRefused, match="no card was charged"):
        await run.go("payment_made")
    run.close()
    run = flow.new_run(Visit(**OWES))  # no doctor or time chosen yet: the guard refuses
    await run.go("appointment_requested")
    with pytest.raises(TransitionRefused, match="confirm the doctor"):
        await run.go("confirm_visit_reason", visit_reason="checkup")
    run.close()


# -- conversations through real LiveKit tasks ----------------------------------------------
def _patient(lines: dict[str, Any]) -> Any:
    """A scripted model: the tool call (or line) for each caller line, by agent and line."""

    def model(turn: Turn) -> Any:
        if not turn.answering_tool:
            reply = lines.get((turn.agent_id, turn.last_user_text))
            if reply is not None:
                return reply
        return f"{turn.agent_id}: noted."

    return model


async def _talk(visit: Visit, lines: dict[str, Any], said: list[str]) -> Any:
    async with flow.session(llm=ScriptedLLM(_patient(lines)), context=visit) as run:
        for line in said:
            await run.session.run(user_input=line)
            await settle(run)
        return run


def _records(today: date = demo.TODAY) -> FakeDatabase:
    return FakeDatabase(rng=random.Random(1), today=today)


async def test_a_new_patient_gives_all_four_and_gets_a_record() -> None:
    db = _records()
    run = await _talk(Visit().use_database(db), {
        ("Reception", "book please"): call("schedule_appointment"),
        ("get_name_task", "Ann Lee"): call("update_name", first_name="Ann", last_name="Lee"),
        ("get_dob_task", "1990"): call("update_dob", year=1990, month=1, day=2),
        ("get_phone_number_task", "5551234567"): call("update_phone_number",
                                                      phone_number="5551234567"),
        ("get_insurance_task", "Aetna"): call("record_health_insurance", insurance="Aetna"),
    }, ["book please", "Ann Lee", "1990", "5551234567", "Aetna"])
    assert run.state == "Scheduling" and [r.trigger for r in run.log] == ["appointment_requested"]
    record = db.get_patient_by_name("Ann Lee")
    assert record is not None and record["insurance"] == "Aetna"
    assert record["date_of_birth"] == date(1990, 1, 2) and run.context.phone_number == "5551234567"


async def test_a_known_patient_stops_at_the_birth_date() -> None:
    """ProfileFound from the TaskGroup's callback: no phone, no insurance asked."""
    db = _records()
    run = await _talk(Visit().use_database(db), {
        ("Reception", "my bill"): call("handle_billing"),
        ("get_name_task", "Peter Parker"): call("update_name", first_name="Peter",
                                                last_name="Parker"),
        ("get_dob_task", "10 Aug 2001"): call("update_dob", year=2001, month=8, day=10),
    }, ["my bill", "Peter Parker", "10 Aug 2001"])
    assert run.state == "Billing" and run.context.insurance == "Aetna"
    assert run.context.balance == db.get_outstanding_balance("Peter Parker")
    assert len(db.patient_records) == 2  # no record added


async def test_a_payment_is_charged_through_get_credit_card_task() -> None:
    db = _records()
    before = db.get_outstanding_balance("Mary Jane")
    assert before is not None
    run = await _talk(Visit(**KNOWN).use_database(db), {
        ("Reception", "pay"): call("handle_billing"),
        ("Billing", "ten"): call("confirm_payment_proceeds", amount=10.0),
        ("get_card_number_task", "4111"): call("update_card_number", card_number="4111111111111111"),
        ("get_expiration_date_task", "12/35"): call("update_expiration_date", expiration_month=12,
                                                    expiration_year=35),
        ("get_security_code_task", "123"): call("update_security_code", security_code="123"),
        ("get_name_task", "Mary Jane"): call("update_name", first_name="Mary", last_name="Jane"),
    }, ["pay", "ten", "4111", "12/35", "123", "Mary Jane"])
    assert [r.trigger for r in run.log] == ["billing_requested", "confirm_payment_proceeds",
                                           "payment_made"]
    assert run.state == "Reception" and run.context.card_last_four == "1111"
    assert db.get_outstanding_balance("Mary Jane") == round(before - 10.0, 2)


async def test_a_payment_above_the_balance_is_refused() -> None:
    run = await _talk(Visit(**KNOWN).use_database(_records()), {
        ("Reception", "pay"): call("handle_billing"),
        ("Billing", "a million"): call("confirm_payment_proceeds", amount=1_000_000.0),
    }, ["pay", "a million"])
    assert run.state == "Billing" and run.refusals[-1].kind == "guard"
    assert "at most the outstanding balance" in run.refusals[-1].reason


async def test_update_insurance_runs_get_insurance_task_and_changes_the_doctors() -> None:
    db = _records()
    run = await _talk(Visit(**KNOWN).use_database(db), {
        ("Reception", "book"): call("schedule_appointment"),
        ("Scheduling", "I have HealthFirst now"): call("update_insurance",
                                                       updated_insurance="HealthFirst"),
        ("get_insurance_task", "yes HealthFirst"): call("record_health_insurance",
                                                        insurance="HealthFirst"),
        ("Scheduling", "Hyde"): call("confirm_doctor_selection",
                                     selected_doctor="Dr. Edward Hyde"),
    }, ["book", "I have HealthFirst now", "yes HealthFirst", "Hyde"])
    assert run.state == "Scheduling" and run.context.insurance == "HealthFirst"
    record = db.get_patient_by_name("Mary Jane")
    assert record is not None and record["insurance"] == "HealthFirst"
    # Dr. Hyde does not take HealthFirst: the tool refused him
    assert run.context.selected_doctor is None


async def test_a_patient_without_appointments_is_told_so() -> None:
    run = await _talk(Visit(**KNOWN).use_database(_records()), {
        ("Reception", "cancel mine"): call("modify_appointment", function="cancel"),
    }, ["cancel mine"])
    assert run.log == [] and run.state == "Reception"
    told = [i for i in run.session.history.items if i.type == "function_call_output"]
    assert "no appointments on file" in told[-1].output


async def test_gap_reschedule_at_reception_can_cancel_without_a_new_one() -> None:
    db = _records()
    slot = "2026-12-03T09:30:00"
    run = await _talk(Visit(**KNOWN).use_database(db), {
        ("Reception", "book"): call("schedule_appointment"),
        ("Scheduling", "Jekyll"): call("confirm_doctor_selection", selected_doctor="Dr. Henry Jekyll"),
        ("Scheduling", "9:30"): call("schedule_appointment", appointment_time=slot),
        ("Scheduling", "check-up"): call("confirm_visit_reason", visit_reason="check-up"),
        ("Reception", "reschedule it"): call("modify_appointment", function="reschedule"),
        ("Modifying", "that one"): call("confirm_appointment_selection", function="cancel",
                                        selected_appointment_time="2026-12-03 09:30:00"),
    }, ["book", "Jekyll", "9:30", "check-up", "reschedule it", "that one"])
    assert run.context.request == "reschedule" and run.state == "Reception"
    record = db.get_patient_by_name("Mary Jane")
    assert record is not None and record["appointments"] == []  # gap: nothing rebooked


# Session mode cannot take these last steps with a scripted caller of one line a turn:
NOT_IN_SESSION = {
    "transfer_to_human": "the warm transfer dials a supervisor over a SIP trunk: nothing to "
                         "call offline (the pure cover takes it)",
    "payment_made": "taken when GetCreditCardTask returns, which needs four answers: "
                    "test_a_payment_is_charged_through_get_credit_card_task takes it",
    "payment_failed": "taken when GetCreditCardTask fails: the pure cover takes it",
}


async def test_every_transition_through_a_session(cover: FlowPaths, clinic: None) -> None:
    """Each path of the cover, up to a step named in NOT_IN_SESSION, in a real session."""
    taken: set[tuple[str, str]] = set()
    for path in cover:
        cut = next((i for i, step in enumerate(path.steps) if step.trigger in NOT_IN_SESSION),
                   len(path.steps))
        if cut:
            prefix = FlowPath(path.start, path.steps[:cut])
            await take_path(flow, prefix)
            taken |= set(prefix.transitions)
    every = {t for path in cover for t in path.transitions}
    assert every - taken == {t for t in every if t[1] in NOT_IN_SESSION}


# -- explore finds a planted off-by-one guard -------------------------------------------------
# ``confirm_payment_proceeds`` planted to accept 0 (``0 <= amount``); the entry condition
# "a payment is above zero" finds it. From a known patient with a balance, depth 2:
# billing_requested → confirm_payment_proceeds(amount=0.0), the guard's boundary.

PAYS_SOMETHING = {"Payment": lambda c: c.payment_amount is not None and c.payment_amount > 0}



class PlantedBilling(Billing):
    name = "Billing"

    @transition(to="Payment",
                when=lambda c, amount: c.balance is not None and 0 <= amount <= c.balance,
                refused="planted")
    async def confirm_payment_proceeds(self, ctx: RunContext[Visit], amount: float) -> None:
        """Call to proceed with payment steps regarding the user's bill."""
        ctx.userdata.payment_amount = amount


PLANTED = Flow("healthcare_planted", context=Visit, initial=flow.initial,
               states=[PlantedBilling if s is Billing else s for s in flow.state_classes],
               final=sorted(flow.final), global_transitions=flow.global_transitions)


def test_explore_passes_the_healthcare_port_at_depth_4() -> None:
    found = explore(flow, depth=4, entry_conditions=PAYS_SOMETHING, initial=OWES)
    assert found.ok and ("Billing", "confirm_payment_proceeds") in found.taken


def test_explore_finds_the_planted_off_by_one_at_depth_2() -> None:
    found = explore(PLANTED, depth=2, entry_conditions=PAYS_SOMETHING, initial=OWES)
    assert found.counterexample is not None and len(found.counterexample) == 2
    last = found.counterexample[-1].attempt
    assert last is not None and last.trigger == "confirm_payment_proceeds"
    assert last.arguments["amount"] == 0
    assert explore(PLANTED, depth=1, entry_conditions=PAYS_SOMETHING, initial=OWES).ok
