"""CallContext: what the base states learn about a caller. Subclass it to add fields."""

from __future__ import annotations

from pydantic import Field

from ..context import Context


class CallContext(Context):
    caller_name: str | None = None
    topic: str | None = None
    account_id: str | None = None
    verified: bool = False
    failed_verifications: int = 0
    refund_limit: float = 100.0
    refund_ticket: str | None = None
    escalation_reason: str | None = None
    pin_hint: str | None = Field(default=None, json_schema_extra={"pii": True})
