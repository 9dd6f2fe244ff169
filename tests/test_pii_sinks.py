"""pii values stay out of every sink: logs, spans, metrics, checkpoints, prompts.

Every value a sensitive field ever held in a call (current, replaced, cleared, rolled
back, rejected by its validation, or raised in an exception) is looked for, through a
real AgentSession, in what leaves the call: log records formatted at DEBUG by
LiveKit's JSON formatter, spans of an in-memory exporter, the Prometheus registry,
the raw bytes of a SQLite file, the raw values in Redis, and every request the
scripted LLM received.
"""

from __future__ import annotations

import io
import logging

from livekit.agents import RunContext, ToolError
from pydantic import Field

from handoff import Context, Flow, State, function_tool, transition
from handoff.testing import ScriptedLLM, call

BACKEND: dict[str, str] = {}
"""What the tools look up by a token: the secret values never appear in the chat."""


class Vault(Context):
    holder: str | None = None
    pin: str | None = Field(default=None, json_schema_extra={"pii": True})
    card: int | None = Field(default=None, ge=1000, json_schema_extra={"pii": True})


class Desk(State[Vault]):
    """Takes the caller's details."""

    instructions = "Desk."

    @function_tool
    async def set_pin(self, ctx: RunContext[Vault], token: str) -> str:
        """Record the caller's PIN."""
        ctx.userdata.pin = BACKEND[token]
        return "noted"

    @function_tool
    async def set_card(self, ctx: RunContext[Vault], token: str) -> str:
        """Record the caller's card number."""
        ctx.userdata.card = BACKEND[token]  # type: ignore[assignment]  # validated
        return "noted"

    @function_tool
    async def clear_pin(self, ctx: RunContext[Vault]) -> str:
        """Forget the PIN."""
        ctx.userdata.pin = None
        return "cleared"

    @function_tool
    async def check_pin(self, ctx: RunContext[Vault], token: str) -> str:
        """Check a PIN the caller gave."""
        raise ToolError(f"PIN {BACKEND[token]} does not match")

    @transition(to="Safe", when=lambda c, token, mode="ok": mode != "guard",
                refused=lambda c: f"the PIN {c.pin} is not verified")
    async def unlock(self, ctx: RunContext[Vault], token: str, mode: str = "ok") -> None:
        """Open the safe."""
        ctx.userdata.pin = BACKEND[token]
        if mode == "raise":
            raise RuntimeError(f"vault rejected PIN {BACKEND[token]}")
        if mode == "refuse":
            from handoff import TransitionRefused

            raise TransitionRefused(f"PIN {BACKEND[token]} is locked")


class Safe(State[Vault]):
    """The safe is open."""

    instructions = "Safe."

    @transition(to="Desk")
    async def back(self, ctx: RunContext[Vault]) -> None:
        """Back to the desk."""


flow = Flow("vault", context=Vault, initial=Desk, states=[Desk, Safe], final=[Safe])


def _leaks(values: set[str], **sinks: str) -> dict[str, list[str]]:
    return {name: sorted(v for v in values if v in text)
            for name, text in sinks.items() if any(v in text for v in values)}


async def test_old_cleared_and_rejected_values_stay_out_of_logs(json_logs: io.StringIO) -> None:
    """A PIN replaced then cleared, a card number its validation rejected, a ToolError
    quoting a PIN, a handoff log line quoting one: none is in the JSON log."""
    BACKEND.update({"t1": "QX7731ZK", "t2": "ZK4410QX", "t3": "JV9921XQ"})
    llm = ScriptedLLM(["Hello.", call("set_pin", token="t1"), "Noted.",
                       call("set_pin", token="t2"), "Noted.", call("clear_pin"), "Cleared.",
                       call("set_card", token="t3"), "That card is odd.",
                       call("check_pin", token="t1"), "No match."])
    async with flow.session(llm=llm) as run:
        for line in ("pin", "new pin", "forget", "card", "check"):
            await run.session.run(user_input=line)
        logging.getLogger("handoff").warning("support note: caller read %s aloud",
                                             BACKEND["t1"])
        assert run.context.pin is None and run.context.card is None
    text = json_logs.getvalue()
    assert "exception occurred while executing tool" in text  # the rejected card was logged
    assert "ToolError while executing tool" in text
    assert not _leaks(set(BACKEND.values()), logs=text)


def _prompts(llm: ScriptedLLM) -> str:
    """Everything the model was sent: instructions, messages, tool calls and outputs."""
    parts = []
    for turn in llm.turns:
        parts.append(turn.instructions)
        for item in turn.chat_ctx.items:
            parts.append(str(getattr(item, "content", "")))
            parts.append(str(getattr(item, "arguments", "")))
            parts.append(str(getattr(item, "output", "")))
    return "\n".join(parts)


async def test_refusal_reasons_and_tool_errors_reach_the_llm_scrubbed(
    json_logs: io.StringIO,
) -> None:
    """A guard's refusal text quoting the PIN, a body raising an exception or refusing
    with it, a tool's ToolError quoting a replaced PIN: the model sees none of them."""
    BACKEND.update({"p1": "QZ8812KV", "p2": "VK3391QZ", "p3": "ZQ7720JK"})
    llm = ScriptedLLM(["Hello.", call("set_pin", token="p1"), "Noted.",
                       call("unlock", token="p2", mode="raise"), "That failed.",
                       call("unlock", token="p3", mode="refuse"), "Locked.",
                       call("check_pin", token="p2"), "No match.",
                       call("unlock", token="p1", mode="guard"), "Not yet.",
                       call("clear_pin"), "Cleared."])
    async with flow.session(llm=llm) as run:
        for line in ("pin", "unlock", "unlock again", "check", "unlock once more", "forget"):
            await run.session.run(user_input=line)
        kinds = [r.kind for r in run.refusals]
        assert kinds == ["error", "body", "guard"], kinds
        reasons = "\n".join(r.reason for r in run.refusals)
    assert "[redacted]" in reasons
    values = set(BACKEND.values())
    assert not _leaks(values, prompts=_prompts(llm), refusals=reasons,
                      logs=json_logs.getvalue())
