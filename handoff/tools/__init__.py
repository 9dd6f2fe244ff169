"""Reusable call tools for any State: SIP transfer, hang-up, DTMF.

    from handoff.tools import CallControl
    calls = CallControl(operators={"billing": "tel:+15550100"})
"""

from .call_control import (
    CallControl,
    CallHandle,
    CallLocator,
    NoPhoneLine,
    job_call_locator,
    sip_target,
)

__all__ = [
    "CallControl",
    "CallHandle",
    "CallLocator",
    "NoPhoneLine",
    "job_call_locator",
    "sip_target",
]
