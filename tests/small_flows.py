"""Small flows the core tests share: three states, a guard, a global transition."""

from __future__ import annotations

from handoff import Context, Flow, RunContext, State, TransitionRefused, function_tool, transition


class Ticket(Context):
    name: str | None = None
    verified: bool = False
    notes: list[str] = []
    amount: float = 0.0


class Front(State[Ticket]):
    """Takes the caller's name."""

    instructions = "You are the front desk."
    history = "none"

    @transition(to="Back")
    async def named(self, ctx: RunContext[Ticket], name: str) -> None:
        """Call once the caller said their name."""
        ctx.userdata.name = name
        ctx.userdata.notes.append(f"named {name}")


class Back(State[Ticket]):
    """Does the work once the caller is verified."""

    instructions = "You are the back office."
    history = "full"

    @function_tool
    async def verify(self, ctx: RunContext[Ticket], code: str) -> str:
        """Verify the caller with their code."""
        ctx.userdata.verified = code == "42"
        return "ok" if ctx.userdata.verified else "wrong code"

    @transition(to="Done", when=lambda c: c.verified, refused="verify the caller first")
    async def finish(self, ctx: RunContext[Ticket], amount: float) -> str:
        """Call to finish the ticket with the agreed amount."""
        ctx.userdata.amount = amount
        ctx.userdata.notes.append("finishing")
        if amount > 1000:
            raise TransitionRefused("amounts above 1000 need a supervisor")
        return f"finished with {amount}"

    @transition(to="Front", history="last:2")
    async def restart(self, ctx: RunContext[Ticket]) -> None:
        """Call when the caller wants to start over."""


class Done(State[Ticket]):
    """Says goodbye."""

    instructions = "Say goodbye."
    history = "last:3"


@transition(to="Done")
async def hang_up(ctx: RunContext[Ticket]) -> None:
    """Call when the caller wants to end the call."""


def make_flow(**overrides: object) -> Flow[Ticket]:
    kwargs: dict[str, object] = dict(
        context=Ticket, initial=Front, states=[Front, Back, Done], final=[Done],
        global_transitions=[hang_up],
    )
    kwargs.update(overrides)
    return Flow("tickets", **kwargs)  # type: ignore[arg-type]


flow = make_flow()
