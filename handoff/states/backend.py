"""AccountBackend: what the base states need from your systems (accounts, charges, refunds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Charge:
    charge_id: str
    description: str
    amount: float
    date: str


class AccountBackend(Protocol):
    """Implement this against your CRM/billing system; the states call it from their tools."""

    async def verify(self, account_id: str, pin: str) -> bool: ...

    async def charges(self, account_id: str) -> list[Charge]: ...

    async def open_refund(self, account_id: str, amount: float, reason: str) -> str:
        """Open a refund and return its ticket id."""
        ...
