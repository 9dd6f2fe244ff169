"""Small flows, one per flow feature the testing toolkit must handle (no tests here).

Side trips, a final state without transitions, a flow that hangs up, a Context without
fields, typed arguments (pydantic models, enums, Literal, Annotated), one trigger name
declared twice with different parameters, ordinary tools, guards with boundaries.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from livekit.agents import ToolError
from pydantic import BaseModel, Field

from handoff import RETURN, Context, Flow, RunContext, State, function_tool, transition


# -- a side trip: Verify is entered from anywhere and comes back ---------------------------
class Trip(Context):
    verified: bool = False
    topic: str | None = None


class Reception(State[Trip]):
    """Finds out what the caller needs."""

    instructions = "Reception."

    @transition(to="Account", when=lambda c: c.verified, refused="verify the caller first")
    async def account_question(self, ctx: RunContext[Trip], topic: str) -> None:
        """Call for a question about the account."""
        ctx.userdata.topic = topic


class Account(State[Trip]):
    """Answers account questions."""

    instructions = "Account."

    @transition(to="Bye")
    async def done(self, ctx: RunContext[Trip]) -> None:
        """Call when the caller is done."""


class Verify(State[Trip]):
    """Verifies the caller, then goes back to whoever asked."""

    instructions = "Verify."

    @transition(to=RETURN)
    async def verified(self, ctx: RunContext[Trip]) -> None:
        """Call once the caller is verified."""
        ctx.userdata.verified = True


class Bye(State[Trip]):
    """Says goodbye."""

    instructions = "Bye."


@transition(to="Verify", returns=True)
async def verify(ctx: RunContext[Trip]) -> None:
    """Call when the caller must be verified first."""


def trip_flow() -> Flow[Trip]:
    """Reception -account_question [verified]-> Account -done-> Bye; ``verify`` from
    anywhere is a side trip to Verify, whose ``verified`` returns to where it started."""
    return Flow("trip", context=Trip, initial=Reception, states=[Reception, Account, Verify, Bye],
                final=[Bye], global_transitions=[verify])


# -- a flow that hangs up: its final state ends the session; a tool ends it too --------------
class Nothing(Context):
    """A Context without fields."""


class Hello(State[Nothing]):
    """Greets, then says goodbye."""

    instructions = "Hello."

    @transition(to="Hangup")
    async def goodbye(self, ctx: RunContext[Nothing]) -> None:
        """Call when the caller is done."""

    @function_tool
    async def end_call(self, ctx: RunContext[Nothing]) -> str:
        """End the call now."""
        ctx.session.shutdown()
        return "ending the call"


class Hangup(State[Nothing]):
    """Says goodbye and hangs up (the session ends)."""

    instructions = "Say goodbye."

    async def on_enter(self) -> None:
        await self.session.say("Goodbye!")
        self.session.shutdown()


def hangup_flow() -> Flow[Nothing]:
    return Flow("hangup", context=Nothing, initial=Hello, states=[Hello, Hangup], final=[Hangup])


# -- typed arguments, a shared trigger name, ordinary tools, guard boundaries -----------------
class Allergy(BaseModel):
    name: str
    severe: bool = False


class Size(enum.Enum):
    SMALL = "small"
    LARGE = "large"


class Order(Context):
    allergies: list[Allergy] = []
    size: Size | None = None
    people: int = 0
    kind: str | None = None
    confirmed: bool = False


class Menu(State[Order]):
    """Takes the order."""

    instructions = "Menu."

    @transition(to="Table", when=lambda c, people, **_: 1 <= people <= 12,
                refused="we seat 1 to 12 people")
    async def next(self, ctx: RunContext[Order], people: int,
                   allergies: list[Allergy], size: Size,
                   kind: Literal["dine-in", "takeaway"] = "dine-in") -> None:
        """Call with the party's size, allergies, portion size and kind of order."""
        ctx.userdata.people = people
        ctx.userdata.allergies = allergies
        ctx.userdata.size = size
        ctx.userdata.kind = kind

    @function_tool
    async def specials(self, ctx: RunContext[Order]) -> str:
        """Today's specials."""
        return "soup"


class Table(State[Order]):
    """Confirms the table."""

    instructions = "Table."

    @transition(to="Served", when=lambda c: c.confirmed and c.people >= 2 and c.kind == "dine-in",
                refused="confirm a dine-in table for two or more first")
    async def next(self, ctx: RunContext[Order],
                   note: Annotated[str, Field(description="anything for the kitchen")]) -> None:
        """Call once the table is confirmed."""

    @function_tool
    async def confirm(self, ctx: RunContext[Order]) -> str:
        """Confirm the table."""
        ctx.userdata.confirmed = True
        return "confirmed"

    @function_tool
    async def broken_lookup(self, ctx: RunContext[Order], what: str) -> str:
        """Look something up (always fails: a broken tool)."""
        raise ToolError("the lookup service is down")


class Served(State[Order]):
    """Serves."""

    instructions = "Served."


class ServeTable(Table):
    """Table, its move named ``serve`` (no trigger name shared with Menu)."""

    name = "Table"

    @transition(to="Served", name="serve")
    async def next(self, ctx: RunContext[Order]) -> None:
        """Call once the caller is seated."""


def order_flow(*, shared_name: bool = True) -> Flow[Order]:
    """Menu -next(people, allergies, size, kind)-> Table -next(note)-> Served
    (``serve`` instead of the second ``next`` with ``shared_name=False``)."""
    table = Table if shared_name else ServeTable
    return Flow("order", context=Order, initial=Menu, states=[Menu, table, Served],
                final=[Served])
