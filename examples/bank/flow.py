"""A bank line: the desk sends the caller on a verification side trip, which comes back
with a typed ``Identity`` (LiveKit's ``AgentTask[Identity]`` shape), and only then talks
about the account.

    Desk ──verify (side trip)──▶ Verify ──identity_checked ⮐ Identity──▶ back to Desk
    Desk ──statement──▶ Statement (final)

``Verify`` is a flow state, not an inline task: it is drawn, checkpointed and tested like
any state, and a call resumed in the middle of it still comes back with its result. The
desk acts on the result in ``on_return`` (LiveKit: the code after ``await VerifyTask()``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from handoff import RETURN, Context, Flow, Returned, RunContext, State, transition

ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"
ACCOUNTS = {"1990-04-01": "Ann Lee"}
"""Date of birth → account holder (the bank's records, for the demo)."""


class Identity(BaseModel):
    """What the verification side trip returns."""

    verified: bool
    holder: str | None = None


class Caller(Context):
    verified: bool = False
    holder: str | None = None
    attempts: int = 0


class Desk(State[Caller]):
    """Answers account questions once the caller is verified."""

    instructions = ("You are a bank's phone desk. Before anything about the account, verify "
                    "the caller. Once verified, offer to send the statement.")

    @transition(to="Verify", returns=True, when=lambda c: c.attempts < 3,
                refused="three failed verifications: offer to call back")
    async def verify(self, ctx: RunContext[Caller]) -> None:
        """Call before anything about the account: the caller must be verified first."""

    @transition(to="Statement", when=lambda c: c.verified,
                refused="the caller is not verified yet: call verify first")
    async def statement(self, ctx: RunContext[Caller]) -> None:
        """Call when the verified caller wants their statement."""

    async def on_return(self, returned: Returned[Any]) -> str | None:
        """The verification came back: remember who the caller is (or one more attempt)."""
        identity = returned.value
        if not isinstance(identity, Identity) or not identity.verified:
            self.context.attempts += 1
            return "Verification failed. Tell the caller, and offer to try again."
        self.context.verified, self.context.holder = True, identity.holder
        return f"The caller is verified as {identity.holder}."


class Verify(State[Caller]):
    """Checks the caller's date of birth; comes back with an Identity."""

    instructions = "Ask for the caller's date of birth, then report it."
    history = "none"

    @transition(to=RETURN)
    async def identity_checked(
        self, ctx: RunContext[Caller],
        date_of_birth: Annotated[str, Field(pattern=ISO_DATE, description="YYYY-MM-DD")],
    ) -> Identity:
        """Call once the caller told you their date of birth."""
        holder = ACCOUNTS.get(date_of_birth)
        return Identity(verified=holder is not None, holder=holder)


class Statement(State[Caller]):
    """Sends the statement and says goodbye."""

    instructions = "Say the statement is on its way, and goodbye."


flow = Flow("bank", context=Caller, initial=Desk, states=[Desk, Verify, Statement],
            final=[Statement])
