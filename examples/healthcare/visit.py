"""The healthcare port's Context (``Visit``) and what its states share: the per-call
records, the end-call tool, updating the patient's record with a LiveKit task."""

from __future__ import annotations

import logging
from datetime import date
from typing import Literal

from livekit.agents import ToolError
from livekit.agents.beta.tools import EndCallTool
from pydantic import Field, PrivateAttr

from handoff import Context, RunContext

from .database import FakeDatabase
from .tasks import END_INSTRUCTIONS, FIELD_TASKS

logger = logging.getLogger("examples.healthcare")

Insurance = Literal["Anthem", "Aetna", "EmblemHealth", "HealthFirst"]
Request = Literal["schedule", "reschedule", "cancel", "billing"]
Function = Literal["reschedule", "cancel"]


class Visit(Context):
    """What the call learns: the request, the patient's profile, the appointment being made,
    the bill. The clinic's records are the per-call ``database`` (the original's
    ``UserData``), not part of the Context: they are the clinic's, not the call's."""

    request: Request | None = None
    patient_name: str | None = Field(default=None, json_schema_extra={"pii": True})
    date_of_birth: date | None = Field(default=None, json_schema_extra={"pii": True})
    phone_number: str | None = Field(default=None, json_schema_extra={"pii": True})
    insurance: Insurance | None = None
    selected_doctor: str | None = None
    appointment_time: str | None = None
    old_appointment: str | None = None
    balance: float | None = None
    payment_amount: float | None = None
    card_last_four: str | None = Field(default=None, json_schema_extra={"pii": True})
    outcome: str | None = None
    """What reception tells the patient on coming back (the original tools' return text)."""
    _database: FakeDatabase = PrivateAttr(default_factory=lambda: new_records())

    @property
    def database(self) -> FakeDatabase:
        return self._database

    def use_database(self, database: FakeDatabase) -> Visit:
        """This call's records are ``database`` (a test's seeded one); returns the Context."""
        self._database = database
        return self


def new_records() -> FakeDatabase:
    """The records a new call starts with (the original makes a ``FakeDatabase`` per call)."""
    return FakeDatabase()


class ProfileFound(ToolError):
    def __init__(self) -> None:
        super().__init__("An existing profile has been found")


def _end_call() -> EndCallTool:
    return EndCallTool(end_instructions=END_INSTRUCTIONS, delete_room=True)


async def _update_record(ctx: RunContext[Visit], field: str, updated_detail: str) -> str:
    """The original's ``build_update_record`` tool: the field's task, then the record."""
    visit = ctx.userdata
    if visit.patient_name is None:
        raise ToolError("no patient record yet: the patient is authenticated when they ask "
                        "to schedule, modify an appointment or pay a bill")
    task_class, attr = FIELD_TASKS[field]
    chat_ctx = ctx.session.history.copy()
    chat_ctx.add_message(role="system", content=f"The user provided the new field: {updated_detail}")
    result = await task_class(require_confirmation=False, chat_ctx=chat_ctx)
    value = getattr(result, attr)
    if not visit.database.update_patient_record(visit.patient_name, **{attr: value}):
        return "No profile was found to update"
    setattr(visit, attr, value)
    return f"The user's {field} has been updated."


def _load_profile(visit: Visit, record: dict[str, object]) -> None:
    visit.patient_name = str(record["name"])
    dob = record["date_of_birth"]
    visit.date_of_birth = dob if isinstance(dob, date) else None
    visit.phone_number = str(record["phone_number"])
    insurance = record["insurance"]
    visit.insurance = insurance if insurance in ("Anthem", "Aetna", "EmblemHealth",
                                                 "HealthFirst") else None


