"""The healthcare example's own LiveKit ``AgentTask``, its prompts and its tool builders.

``GetInsuranceTask`` is the original's, unchanged: a real ``AgentTask[GetInsuranceResult]``
the port's states await (in the authentication ``TaskGroup``, and from ``update_insurance``
and ``update_record``), next to LiveKit's prebuilt ``GetNameTask``, ``GetDOBTask``,
``GetPhoneNumberTask`` and ``GetCreditCardTask``.
(Apache License 2.0, Copyright 2023 LiveKit, Inc.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from livekit.agents import NOT_GIVEN, AgentTask, RunContext, llm
from livekit.agents.beta import Instructions
from livekit.agents.beta.workflows import GetDOBTask, GetPhoneNumberTask
from livekit.agents.llm import function_tool
from pydantic import Field

VALID_INSURANCES = ["Anthem", "Aetna", "EmblemHealth", "HealthFirst"]

GLOBAL_INSTRUCTIONS = (
    "Be succinct and to the point when assisting the user. Never give medical advice or diagnose "
    "users, escalate to a human whenever the user's request is out of your scope of assistance.")

_GET_INSURANCE_BASE_INSTRUCTIONS = """\
You will be gathering the user's health insurance.
{modality_specific}{extra_instructions}"""
_GET_INSURANCE_AUDIO_SPECIFIC = (
    "You are speaking with the user over voice. Avoid using dashes and special characters in your "
    "response. Confirm the insurance choice verbally before recording it.")
_GET_INSURANCE_TEXT_SPECIFIC = (
    "You are communicating with the user over text. Accept the typed insurance selection directly.")

SCHEDULE_APPT_INSTRUCTIONS = (
    "You will now assist the user with selecting a doctor and appointment time.\n"
    "Do not be verbose and ask for any unnecessary information unless instructed to.\n"
    "You will focus on confirming the doctor the user selects first. Do not ask for appointment "
    "times preemptively.\n"
    "If the user requests to update their insurance, after confirming their new insurance, their "
    "compatible doctor(s) may change.\n"
    "In this case, do not prompt for a doctor confirmation until their insurance is fully updated "
    "and their compatible doctors are retrieved.\n"
    "You are communicating with the user over text. Present doctors and available timeslots "
    "clearly.\n" + GLOBAL_INSTRUCTIONS
)
MODIFY_APPT_INSTRUCTIONS = (
    "You will now assist the user with modifying their appointment.\n"
    "Do not be verbose and ask for any unnecessary information unless instructed to.\n"
    "Do not preemptively ask for information and refrain from listing made-up appointment times.\n"
    "You are communicating with the user over text. Present appointment information clearly.\n"
    + GLOBAL_INSTRUCTIONS
)
HEALTHCARE_AGENT_INSTRUCTIONS = (
    "You are a healthcare agent offering assistance to users. Maintain a friendly disposition. "
    "If the user refuses to provide any requested information or does not cooperate, call "
    "EndCallTool.\n"
    "Before scheduling/modifying appointments, you will be authenticating the user's information "
    "and checking for an existing profile. Do not preemptively ask for information (ex. birthday) "
    "unless instructed to.\n"
    "Call 'schedule_appointment' to schedule a new appointment. If the user requests to "
    "reschedule or cancel their appointment, call 'modify_appointment'.\n"
    "You are communicating with the user over text. Be clear and direct in your responses.\n"
    + GLOBAL_INSTRUCTIONS
)
END_INSTRUCTIONS = ("Disclose that the call is ending because the user refuses to cooperate or "
                    "provide information and say goodbye.")


@dataclass
class GetInsuranceResult:
    insurance: str


class GetInsuranceTask(AgentTask[GetInsuranceResult]):
    def __init__(self, extra_instructions: str = "", chat_ctx: llm.ChatContext | None = None,
                 require_confirmation: bool = False) -> None:
        extra = f"\n{extra_instructions}" if extra_instructions else ""
        super().__init__(
            instructions=Instructions(
                _GET_INSURANCE_BASE_INSTRUCTIONS.format(
                    modality_specific=_GET_INSURANCE_AUDIO_SPECIFIC, extra_instructions=extra),
                text=_GET_INSURANCE_BASE_INSTRUCTIONS.format(
                    modality_specific=_GET_INSURANCE_TEXT_SPECIFIC, extra_instructions=extra),
            ),
            chat_ctx=chat_ctx or NOT_GIVEN,
        )

    async def on_enter(self) -> None:
        await self.session.generate_reply(
            instructions="Collect the user's health insurance, inform them of the accepted "
                         "insurances if they ask.")

    @function_tool()
    async def record_health_insurance(
        self, context: RunContext,
        insurance: Annotated[str, Field(json_schema_extra={"enum": VALID_INSURANCES})],
    ) -> None:
        """Record the user's health insurance.

        Args:
            insurance (str): The user's health insurance
        """
        self.complete(GetInsuranceResult(insurance=insurance))


# update_record's fields: the task that collects each, and the attribute of its result
FIELD_TASKS: dict[str, tuple[Any, str]] = {
    "dob": (GetDOBTask, "date_of_birth"),
    "phone": (GetPhoneNumberTask, "phone_number"),
    "insurance": (GetInsuranceTask, "insurance"),
}
