"""What the Swarm airline agents share: the original's ``context_variables``, typed.

The original passes two strings (``customer_context``, ``flight_context``, in
``examples/airline/main.py``) and interpolates them into the triage prompt. Here they are
the fields of one Context; handoff's brief puts them in every agent's instructions
(the pii fields left out), and the tools write what they did beside them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import Field

from handoff import Context

DEPARTURE = datetime(2024, 5, 21, 19, 0, tzinfo=UTC)
"""The original's flight: "3pm ET, 5/21/2024" (Eastern daylight time, 19:00 UTC)."""


def now() -> datetime:
    """The time the tools check the change policy against (tests replace it)."""
    return datetime.now(UTC)


class FlightCall(Context):
    """The customer and their upcoming flight, and what this call has done about it."""

    customer_id: str = "customer_12345"
    customer_name: str = Field(default="John Doe", json_schema_extra={"pii": True})
    phone_number: str = Field(default="(123) 456-7890", json_schema_extra={"pii": True})
    email: str = Field(default="johndoe@example.com", json_schema_extra={"pii": True})
    status: str = "Premium"
    account_status: str = "Active"
    balance: float = 0.0
    location: str = Field(default="1234 Main St, San Francisco, CA 94123, USA",
                          json_schema_extra={"pii": True})

    flight_number: str = "1919"
    origin: str = "LGA (LaGuardia), New York"
    destination: str = "LAX, Los Angeles"
    departure: datetime = DEPARTURE

    hours_to_departure: int | None = None
    """Whole hours from the eligibility check to departure (``valid_to_change_flight``)."""
    changed_with_hours: int | None = None
    """``hours_to_departure`` when the flight was changed (None: not changed)."""
    refund_initiated: bool = False
    credits_initiated: bool = False
    baggage_search_started: bool = False
    escalation_reason: str | None = None
