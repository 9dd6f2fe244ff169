"""Small flows the toolkit's own tests count by hand (no tests here: a shared module)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from handoff import Context, Flow, RunContext, State, TransitionRefused, transition


class Desk(Context):
    name: str | None = None
    verified: bool = False
    amount: float = 0.0
    tags: list[str] = []
    mode: Literal["walk-in", "phone"] = "phone"
    visits: int = Field(default=0, ge=0)


class Front(State[Desk]):
    """Takes the caller's name."""

    instructions = "You are the front desk."

    @transition(to="Back")
    async def named(self, ctx: RunContext[Desk], name: str) -> None:
        """Call once the caller said their name."""
        ctx.userdata.name = name


class Back(State[Desk]):
    """Finishes verified tickets."""

    instructions = "You are the back office."

    @transition(to="Done", when=lambda c: c.verified, refused="verify the caller first")
    async def finish(self, ctx: RunContext[Desk], amount: float) -> None:
        """Call to finish with the agreed amount."""
        if amount > 1000:
            raise TransitionRefused("amounts above 1000 need a supervisor")
        ctx.userdata.amount = amount

    @transition(to="Front")
    async def restart(self, ctx: RunContext[Desk]) -> None:
        """Call when the caller wants to start over."""


class Done(State[Desk]):
    """Says goodbye."""

    instructions = "Say goodbye."


@transition(to="Done")
async def hang_up(ctx: RunContext[Desk]) -> None:
    """Call when the caller hangs up."""


def desk_flow(name: str = "desk") -> Flow[Desk]:
    """Front -named-> Back -finish [verified]-> Done; Back -restart-> Front; hang_up from all.

    Hand count: 6 transitions (Front: named, hang_up; Back: finish, restart, hang_up;
    Done: hang_up) and 2 guard outcomes (Back.finish allowed/refused): 8 items.
    """
    return Flow(name, context=Desk, initial=Front, states=[Front, Back, Done], final=[Done],
                global_transitions=[hang_up])


class Lobby(State[Desk]):
    """A lobby whose only door never opens."""

    instructions = "Wait."

    @transition(to="Vault", when=lambda c: False, refused="the vault never opens")
    async def open_vault(self, ctx: RunContext[Desk]) -> None:
        """Call to open the vault."""

    @transition(to="Street")
    async def leave(self, ctx: RunContext[Desk]) -> None:
        """Call to leave."""


class Vault(State[Desk]):
    """Unreachable in practice."""

    instructions = "Vault."


class Street(State[Desk]):
    """Outside."""

    instructions = "Street."


def vault_flow() -> Flow[Desk]:
    return Flow("vault", context=Desk, initial=Lobby, states=[Lobby, Vault, Street],
                final=[Vault, Street])
