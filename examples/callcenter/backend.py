"""The demo's account system: a few accounts held in memory (swap in your CRM)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from handoff.states import Charge


@dataclass
class Account:
    pin: str
    charges: list[Charge]


@dataclass
class DemoBackend:
    """An in-memory AccountBackend with two accounts; refunds are kept in ``refunds``."""

    accounts: dict[str, Account] = field(default_factory=lambda: {
        "4411": Account("1234", [
            Charge("C-101", "Monthly plan", 29.00, "2026-11-01"),
            Charge("C-102", "Roaming data pass", 45.00, "2026-11-09"),
        ]),
        "5522": Account("0000", [Charge("C-201", "Monthly plan", 19.00, "2026-11-01")]),
    })
    refunds: list[tuple[str, float, str, str]] = field(default_factory=list)
    _tickets: itertools.count[int] = field(default_factory=lambda: itertools.count(9001))

    async def verify(self, account_id: str, pin: str) -> bool:
        account = self.accounts.get(account_id)
        return account is not None and account.pin == pin

    async def charges(self, account_id: str) -> list[Charge]:
        account = self.accounts.get(account_id)
        return list(account.charges) if account else []

    async def open_refund(self, account_id: str, amount: float, reason: str) -> str:
        ticket = f"R-{next(self._tickets)}"
        self.refunds.append((account_id, amount, reason, ticket))
        return ticket
