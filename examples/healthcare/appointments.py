"""Scheduling and Modifying: the original's ``ScheduleAppointmentTask`` and
``ModifyAppointmentTask`` as States (see flow.py)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from livekit.agents import ToolError, llm

from handoff import RunContext, State, TransitionRefused, function_tool, transition

from .tasks import MODIFY_APPT_INSTRUCTIONS, SCHEDULE_APPT_INSTRUCTIONS, GetInsuranceTask
from .visit import Function, Visit, _end_call, _update_record


def _compatible(visit: Visit) -> list[str]:
    return [d["name"] for d in visit.database.get_compatible_doctors(insurance=visit.insurance or "")]


def _slots(visit: Visit, doctor: str) -> list[str]:
    record = visit.database.get_doctor_by_name(doctor)
    return [datetime.combine(s["date"], s["time"]).isoformat() for s in (record or {}).get(
        "availability", [])]


class Scheduling(State[Visit]):
    """Has the patient choose a doctor their insurance covers, a time and the visit's reason."""

    instructions = SCHEDULE_APPT_INSTRUCTIONS
    tools = [_end_call()]

    async def on_enter(self) -> None:
        if self.run.resuming:
            return
        doctors = _compatible(self.context)
        listing = f"These doctors are now compatible with the user's insurance: {doctors}. "
        if len(doctors) > 1:
            self.session.generate_reply(instructions=listing + (
                "Inform the user of the doctors compatible to them, and prompt the user to choose "
                "one. Avoid special notation when listing out the doctors."))
        else:
            self.session.generate_reply(instructions=listing + (
                "Inform the user of their compatible doctor and confirm if they would like to "
                "select that doctor. Avoid special notation when listing out the doctors.."))

    @function_tool
    async def update_insurance(self, ctx: RunContext[Visit], updated_insurance: str) -> str:
        """Call when the user requests to update their health insurance.

        Args:
            updated_insurance: The new insurance value provided by the user
        """
        chat_ctx = llm.ChatContext()
        chat_ctx.add_message(role="system",
                             content=f"The user provided the new insurance: {updated_insurance}")
        result = await GetInsuranceTask(
            chat_ctx=chat_ctx, extra_instructions="Do not confirm the compatible doctors until retrieved.")
        visit = ctx.userdata
        assert visit.patient_name is not None
        if not visit.database.update_patient_record(visit.patient_name, insurance=result.insurance):
            return "No profile was found to update"
        visit.insurance = result.insurance  # type: ignore[assignment]
        visit.selected_doctor = visit.appointment_time = None
        return (f"The insurance has been updated. The new compatible doctors are: "
                f"{_compatible(visit)}. Prompt the user to choose from these doctors.")

    @function_tool
    async def update_record(self, ctx: RunContext[Visit], field: Literal["dob", "phone"],
                            updated_detail: str) -> str:
        """Call when the user requests to modify information in their existing patient record

        Args:
            field: The field to update
            updated_detail: The new field to be updated to
        """
        return await _update_record(ctx, field, updated_detail)

    @function_tool
    async def confirm_doctor_selection(self, ctx: RunContext[Visit], selected_doctor: str) -> str:
        """Call to confirm the user's doctor selection.

        Args:
            selected_doctor: The doctor the user selects
        """
        visit = ctx.userdata
        doctors = _compatible(visit)
        if selected_doctor not in doctors:
            raise ToolError(f"{selected_doctor!r} is not one of the available doctors: {doctors}")
        visit.selected_doctor = selected_doctor
        visit.appointment_time = None
        return (f"The selected doctor has availabilities at {_slots(visit, selected_doctor)}. "
                "Inform and ask the user which time slot they prefer, and do not list out the "
                "times using bullet points. Avoid special notation when listing out the available "
                "time slots.")

    @function_tool
    async def schedule_appointment(self, ctx: RunContext[Visit], appointment_time: str) -> str:
        """Call to confirm the user's selected appointment time.

        Args:
            appointment_time: The user's appointment time selection in ISO format
        """
        visit = ctx.userdata
        if visit.selected_doctor is None:
            raise ToolError("confirm the doctor first (confirm_doctor_selection)")
        slots = _slots(visit, visit.selected_doctor)
        if appointment_time not in slots:
            raise ToolError(f"{appointment_time!r} is not an available time: {slots}")
        visit.appointment_time = appointment_time
        return "Prompt the user for the reason for their visit."

    @transition(to="Reception",
                when=lambda c: (c.patient_name is not None and c.selected_doctor is not None
                                and c.appointment_time is not None),
                refused="confirm the doctor and the appointment time first")
    async def confirm_visit_reason(self, ctx: RunContext[Visit], visit_reason: str) -> None:
        """Call to record the user's reason for their appointment.

        Args:
            visit_reason: The user's reason for visiting a doctor
        """
        visit = ctx.userdata
        assert visit.patient_name is not None and visit.appointment_time is not None
        try:
            when = datetime.fromisoformat(visit.appointment_time)
        except ValueError:
            raise TransitionRefused(f"{visit.appointment_time!r} is not a time: call "
                                    "schedule_appointment with one of the doctor's times") from None
        appointment = {"doctor_name": visit.selected_doctor, "appointment_time": when,
                       "visit_reason": visit_reason}
        visit.database.add_appointment(name=visit.patient_name, appointment=appointment)
        if visit.old_appointment is not None:  # the reschedule of modify_appointment
            visit.outcome = (f"Inform the user that the old appointment ({visit.old_appointment}) "
                             f"has been canceled and a new appointment "
                             f"({json.dumps(appointment, default=str)}) has been scheduled.")
        else:
            visit.outcome = ("The appointment has been made, ask the user if they need assistance "
                             "with anything else.")
        visit.selected_doctor = visit.appointment_time = visit.old_appointment = None


def appointments_of(visit: Visit) -> list[dict[str, Any]]:
    """The patient's appointments on file."""
    record = visit.database.get_patient_by_name(visit.patient_name or "")
    appointments: list[dict[str, Any]] = record.get("appointments", []) if record else []
    return appointments


class Modifying(State[Visit]):
    """Cancels an appointment on file, or cancels it to book another (reschedule)."""

    instructions = MODIFY_APPT_INSTRUCTIONS
    tools = [_end_call()]

    async def on_enter(self) -> None:
        if self.run.resuming:
            return
        visit = self.context
        appointments = appointments_of(visit)
        self.session.generate_reply(instructions=(
            f"The user has these outstanding appointments: {json.dumps(appointments, default=str)} "
            f"and requested to {visit.request} one. Prompt the user to choose one of the "
            "appointments to modify, and confirm if they would either like to reschedule or cancel "
            "it. Avoid using special notations. Call 'confirm_appointment_selection' to carry out "
            "the execution."))

    @transition(to=["Reception", "Scheduling"])
    async def confirm_appointment_selection(self, ctx: RunContext[Visit], function: Function,
                                            selected_appointment_time: str) -> str:
        """Call to confirm the user's appointment selection to either cancel or reschedule

        Args:
            function: Available functions to modify an existing appointment
            selected_appointment_time: The appointment time to cancel or reschedule
        """
        visit = ctx.userdata
        record = visit.database.get_patient_by_name(visit.patient_name or "")
        by_time = {str(a["appointment_time"]): a for a in (record or {}).get("appointments", [])}
        appointment = by_time.get(selected_appointment_time)
        if appointment is None:
            raise TransitionRefused(f"no appointment at {selected_appointment_time!r}; the "
                                    f"appointments are at {list(by_time)}")
        assert visit.patient_name is not None
        visit.database.cancel_appointment(visit.patient_name, appointment)
        old = json.dumps(appointment, default=str)
        if function == "cancel":
            visit.outcome = f"Inform the user that the old appointment ({old}) has been canceled"
            return "Reception"
        visit.old_appointment = old
        return "Scheduling"


