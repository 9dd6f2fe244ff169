"""Healthcare clinic: authenticate the patient, then schedule, modify or pay — with LiveKit tasks.

Ported from LiveKit Agents' healthcare example: repository livekit/agents, path
``examples/healthcare/agent.py`` (with ``fake_database.py``; Apache License 2.0,
Copyright 2023 LiveKit, Inc.). The original is one ``HealthcareAgent`` that awaits
``AgentTask``s from its tools. The two tasks with a conversation of their own
(``ScheduleAppointmentTask``, ``ModifyAppointmentTask``) and the billing steps become
States; the tasks that collect one value stay LiveKit tasks, awaited inside the states
exactly where the original awaits them:

* reception's ``schedule_appointment``, ``modify_appointment`` and ``handle_billing``
  tools await the original's authentication ``TaskGroup`` (``GetNameTask``,
  ``GetDOBTask``, ``GetPhoneNumberTask`` and the example's own ``GetInsuranceTask``,
  with the ``on_task_completed`` callback that stops at a known patient by raising
  ``ProfileFound``), then move the flow by code;
* ``Scheduling`` awaits ``GetInsuranceTask`` from ``update_insurance`` and
  ``GetDOBTask``/``GetPhoneNumberTask`` from ``update_record`` (reception's too);
* ``Payment`` awaits LiveKit's prebuilt ``GetCreditCardTask`` (itself a ``TaskGroup``
  of four tasks) in its ``on_enter``.

    Reception ─appointment_requested (code)─▶ Scheduling ─confirm_visit_reason─▶ Reception
    Reception ─modification_requested (code)─▶ Modifying
    Modifying ─confirm_appointment_selection─▶ Reception (cancel) | Scheduling (reschedule)
    Reception ─billing_requested (code)─▶ Billing ─confirm_payment_proceeds─▶ Payment
    Payment ─payment_made (code)─▶ Reception;  Payment ─payment_failed (code)─▶ Billing
    any state ─transfer_to_human─▶ Transfer

Same prompts (the text-modality variant of each), same tools and arguments, the same
fake database (``database.py``), the same conditions: a payment must be above zero and at
most the outstanding balance; a known name and date of birth skip the phone number and
insurance; a patient with no appointments to modify is told so.

What the port needed from handoff: LiveKit tasks awaited in a state's tools and
``on_enter`` (``run.tasks``; the FSM stays in the state meanwhile); code-only moves
(``llm=False``) that a tool or hook takes with ``run.go()`` once its task returns; a
target the body chooses (``to=[...]``, cancel or reschedule); a flow-wide transition
(``transfer_to_human``); a private per-call database on the Context (the original's
``UserData.database``); LiveKit's ``EndCallTool`` Toolset in ``tools = [...]`` (handoff
counted its ``end_call`` as a tool the state does not offer: fixed with this port); and,
for text turns, waiting for a tool that is still resuming after its task
(``handoff.testing.settle``, also fixed with this port).

Departures, each for a reason: the tools the original adds with ``update_tools`` once
their step is reached (``confirm_doctor_selection``, ``schedule_appointment``,
``confirm_visit_reason``, ``confirm_appointment_selection``, ``confirm_payment_proceeds``,
``update_record``) are offered from the start of their state and refuse until then (a
guard, or a ``ToolError`` naming the step), and their enums of doctors, times and
appointments are checked by the tool instead of the JSON schema; ``retrieve_available_doctors``
returns the doctor records to the LLM instead of awaiting a second reply inside the tool;
``GetInsuranceTask`` does not offer ``transfer_to_human`` (a flow transition, which a
LiveKit task cannot take); the reschedule's summarised chat context is the state's
history; the warm transfer reads its SIP settings when called (the original reads them
at import); the idle nudge of the entrypoint is the worker's business, not the flow's.

What the original lacks (found by porting it and by ``tests/test_port_healthcare.py``):

* ``modify_appointment`` asks for ``reschedule`` or ``cancel``, then
  ``confirm_appointment_selection`` asks again and obeys the second answer: "reschedule"
  at reception can cancel the appointment without a new one;
* rescheduling cancels the old appointment *before* the new one is chosen: a caller who
  hangs up (or is transferred) in between has lost the appointment;
* ``GetInsuranceTask`` takes ``require_confirmation`` and ignores it;
* ``confirm_payment_proceeds`` takes any float: a payment of $0.001 is charged to the
  card and leaves the balance as it was (it is rounded to cents).
"""

from __future__ import annotations

import json
import os
from typing import Literal

from livekit.agents import NOT_GIVEN, ToolError, llm
from livekit.agents.beta.workflows import (
    GetDOBTask,
    GetNameTask,
    GetPhoneNumberTask,
    TaskCompletedEvent,
    TaskGroup,
    WarmTransferTask,
)

from handoff import Flow, RunContext, State, TransitionRefused, function_tool, transition

from .appointments import Modifying, Scheduling, appointments_of
from .billing import Billing, Payment
from .tasks import HEALTHCARE_AGENT_INSTRUCTIONS, GetInsuranceTask
from .visit import (
    Function,
    ProfileFound,
    Request,
    Visit,
    _end_call,
    _load_profile,
    _update_record,
    logger,
)


async def authenticate(visit: Visit, chat_ctx: llm.ChatContext) -> None:
    """The original's ``profile_authenticator``: once per call, a ``TaskGroup`` of LiveKit
    tasks collects name and date of birth, stops there for a known patient
    (``ProfileFound`` from the completion callback), else collects phone and insurance
    and creates the record. A task the patient declines refuses the move with its reason."""
    if visit.patient_name is not None:
        return
    pending: dict[str, str] = {}

    async def task_completed(event: TaskCompletedEvent) -> None:
        if event.task_id == "get_name_task":
            pending["name"] = event.result.first_name + " " + event.result.last_name
        if event.task_id == "get_dob_task":
            record = visit.database.get_patient_by_name_and_dob(
                pending["name"], event.result.date_of_birth)
            if record:
                logger.info("Found existing patient profile")
                _load_profile(visit, record)
                raise ProfileFound()

    group = TaskGroup(chat_ctx=chat_ctx, return_exceptions=False, on_task_completed=task_completed)
    group.add(lambda: GetNameTask(last_name=True), id="get_name_task",
              description="Gathers the user's name")
    group.add(lambda: GetDOBTask(), id="get_dob_task",
              description="Gathers the user's date of birth")
    group.add(lambda: GetPhoneNumberTask(), id="get_phone_number_task",
              description="Gathers the user's phone number")
    group.add(lambda: GetInsuranceTask(), id="get_insurance_task",
              description="Gathers the user's insurance")
    try:
        results = (await group).task_results
    except ProfileFound:
        visit.outcome = "Inform the user that an existing profile has been found with their details."
        return
    except ToolError as exc:  # the patient declined a task: the tool fails, as in the original
        raise ToolError(f"the patient's profile could not be completed: {exc.message}") from None
    name = results["get_name_task"]
    profile = {
        "name": f"{name.first_name} {name.last_name}",
        "date_of_birth": results["get_dob_task"].date_of_birth,
        "phone_number": results["get_phone_number_task"].phone_number,
        "insurance": results["get_insurance_task"].insurance,
    }
    visit.database.add_patient_record(info=profile)
    _load_profile(visit, profile)


class Reception(State[Visit]):
    """Welcomes the patient and takes their request (the original's HealthcareAgent)."""

    instructions = HEALTHCARE_AGENT_INSTRUCTIONS
    tools = [_end_call()]

    async def on_enter(self) -> None:
        if self.run.resuming:
            return
        outcome, self.context.outcome = self.context.outcome, None
        if outcome is not None:
            self.session.generate_reply(instructions=outcome)
            return
        self.session.generate_reply(instructions=(
            "Warmly welcome the user to the healthcare clinic and ask how you can help "
            'them today, e.g. "Welcome to the healthcare clinic, how can I help you?" '
            "Then gather the reason for their call."))

    # The original's three request tools, as LiveKit tools: each authenticates the patient
    # (a TaskGroup awaited in the tool, as the original does), then moves the flow by code.
    @function_tool
    async def schedule_appointment(self, ctx: RunContext[Visit]) -> str | None:
        """Call to schedule an appointment for the user. Do not ask for any information in advance."""
        return await self._request(ctx, "schedule", "appointment_requested")

    @function_tool
    async def modify_appointment(self, ctx: RunContext[Visit], function: Function) -> str | None:
        """Call if the user requests to reschedule or cancel an existing appointment. Do not ask for any information in advance.

        Args:
            function: Available functions to modify an existing appointment
        """  # noqa: E501
        return await self._request(ctx, function, "modification_requested")

    @function_tool
    async def handle_billing(self, ctx: RunContext[Visit]) -> str | None:
        """Call for any billing inquiries, like if the user wants to check their outstanding balance or if they want to pay a bill."""  # noqa: E501
        return await self._request(ctx, "billing", "billing_requested")

    async def _request(self, ctx: RunContext[Visit], request: Request, trigger: str) -> str | None:
        ctx.userdata.request = request
        await authenticate(ctx.userdata, self.chat_ctx)
        if trigger == "modification_requested" and not appointments_of(ctx.userdata):
            # the original's ModifyAppointmentTask says so and completes at once
            return "Inform the user that they have no appointments on file."
        await self.run.go(trigger)
        return None

    _KNOWN = "the patient's profile is not known yet: authenticate first"

    @transition(to="Scheduling", llm=False, when=lambda c: c.patient_name is not None, refused=_KNOWN)
    async def appointment_requested(self) -> None:
        """Taken by schedule_appointment once the patient is authenticated."""

    @transition(to="Modifying", llm=False, when=lambda c: c.patient_name is not None, refused=_KNOWN)
    async def modification_requested(self) -> None:
        """Taken by modify_appointment once the patient is authenticated."""

    @transition(to="Billing", llm=False, when=lambda c: c.patient_name is not None, refused=_KNOWN)
    async def billing_requested(self) -> None:
        """Taken by handle_billing once the patient is authenticated."""

    @function_tool
    async def retrieve_available_doctors(self) -> str:
        """Call if the user inquires about the available doctors in the network"""
        records = json.dumps(self.context.database.doctor_records, default=str)
        return f"Inform the user about each doctor record: {records}"

    @function_tool
    async def update_record(self, ctx: RunContext[Visit],
                            field: Literal["dob", "phone", "insurance"], updated_detail: str) -> str:
        """Call when the user requests to modify information in their existing patient record

        Args:
            field: The field to update
            updated_detail: The new field to be updated to
        """
        return await _update_record(ctx, field, updated_detail)


@transition(to="Transfer")
async def transfer_to_human(ctx: RunContext[Visit]) -> None:
    """Called when the user asks to speak to a human agent. This will put the user on
    hold while the supervisor is connected.

    Ensure that the user has confirmed that they wanted to be transferred. Do not start transfer
    until the user has confirmed.
    """
    for name in ("LIVEKIT_SIP_OUTBOUND_TRUNK", "LIVEKIT_SUPERVISOR_PHONE_NUMBER"):
        if not os.getenv(name):
            raise TransitionRefused(f"{name} is not configured: the transfer is not possible")


class Transfer(State[Visit]):
    """Puts the patient on hold and warm-transfers them to a supervisor."""

    instructions = HEALTHCARE_AGENT_INSTRUCTIONS
    speaks_first = False

    async def on_enter(self) -> None:
        if self.run.resuming:
            return
        await self.session.say("Please hold while I connect you to a human agent.",
                               allow_interruptions=False)
        result = await WarmTransferTask(
            target_phone_number=os.environ["LIVEKIT_SUPERVISOR_PHONE_NUMBER"],
            sip_trunk_id=os.environ["LIVEKIT_SIP_OUTBOUND_TRUNK"],
            sip_number=os.getenv("LIVEKIT_SIP_NUMBER") or NOT_GIVEN,
            chat_ctx=self.session.history,
        )
        logger.info("transfer to supervisor successful: %s", result.human_agent_identity)
        await self.session.say("you are on the line with my supervisor. I'll be hanging up now.",
                               allow_interruptions=False)
        self.session.shutdown()


flow = Flow(
    "healthcare",
    context=Visit,
    initial=Reception,
    states=[Reception, Scheduling, Modifying, Billing, Payment, Transfer],
    final=[Reception, Transfer],  # the patient may end the call at reception (EndCallTool)
    global_transitions=[transfer_to_human],
)
