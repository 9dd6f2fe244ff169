"""The call-centre example: greeter → triage → billing → wrap-up, escalation from anywhere."""

from .flow import Call, flow

__all__ = ["Call", "flow"]
