"""Call-control tools: transfer the caller, end the call, send DTMF — from any State.

One :class:`CallControl` holds the configuration (who ``agent_id`` means, what to
say when hanging up) and makes LiveKit function tools::

    calls = CallControl(operators={"billing": "tel:+15550100",
                                   "supervisor": "sip:supervisor@pbx.example.com"})

    class Escalation(State[Call]):
        transfer_call = calls.transfer_call_tool()    # a class attribute is enough
        end_call = calls.end_call_tool()

    Agent(..., tools=calls.tools())                   # or a plain LiveKit agent

The tools find the call through a *locator* (default: the LiveKit job of this
process — its room, its SIP participant, its server API client). In a session
without a room or without a caller on a phone line (``handoff chat``, tests) the
locator raises :class:`NoPhoneLine`, a ``ToolError`` whose text tells the LLM what
to do instead; nothing crashes. Every tool call is an OpenTelemetry span
(``handoff.call.<tool>``) whose attributes never hold the reason text or secrets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from livekit import api
from livekit.agents import RunContext, ToolError, function_tool, llm
from opentelemetry import trace
from pydantic import AliasChoices, Field, field_validator

from ..errors import ConfigError, NoPhoneLine
from ..settings import HandoffSettings

logger = logging.getLogger("handoff.tools")

DEFAULT_GOODBYE = (
    "Say a short, friendly goodbye to the caller now; the call ends when you finish."
)
DTMF_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11,
              **{c: 12 + i for i, c in enumerate("ABCD")}}
DTMF_GAP = 0.3  # seconds between digits, as livekit's own send_dtmf tool


class DtmfSender(Protocol):
    """What sends DTMF: livekit ``rtc.LocalParticipant`` (``publish_dtmf``)."""

    async def publish_dtmf(self, *, code: int, digit: str) -> None: ...


@dataclass
class CallHandle:
    """The call a tool acts on: room, the caller's SIP identity, server API, job."""

    room_name: str
    api: api.LiveKitAPI
    caller_identity: str | None = None
    dtmf: DtmfSender | None = None
    job: Any = None
    """The livekit ``JobContext`` when running in a worker (shutdown hooks), else None."""


CallLocator = Callable[[RunContext[Any]], CallHandle]


def job_call_locator(ctx: RunContext[Any]) -> CallHandle:
    """The call of the LiveKit job running this session (the worker's default)."""
    from livekit import rtc
    from livekit.agents import get_job_context

    job = get_job_context(required=False)
    if job is None or job.is_fake_job():
        raise NoPhoneLine(
            "this session is not connected to a phone call (text mode, console or a "
            "simulated call: no LiveKit room); tell the caller what you would have done instead"
        )
    caller = next(
        (p.identity for p in job.room.remote_participants.values()
         if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_SIP),
        None,
    )
    return CallHandle(room_name=job.room.name, api=job.api, caller_identity=caller,
                      dtmf=job.room.local_participant, job=job)


def sip_target(value: str) -> str:
    """``tel:+1555…`` / ``sip:…`` as ``transfer_to`` wants; a bare number gets ``tel:``."""
    value = value.strip()
    if value.startswith(("tel:", "sip:", "sips:")):
        return value
    if value.lstrip("+").replace(" ", "").replace("-", "").isdigit():
        return "tel:" + value.replace(" ", "").replace("-", "")
    raise ConfigError(f"operator target {value!r} is neither a phone number nor a sip:/tel: URI")


class OperatorSettings(HandoffSettings):
    """Where ``transfer_call`` may send the caller (``[tool.handoff.call_control]``)."""

    section = "call_control"

    operators: dict[str, str] = Field(default_factory=dict, validation_alias=AliasChoices(
        "operators", "HANDOFF_OPERATORS"))
    """``HANDOFF_OPERATORS``: operator name → phone number or SIP URI,
    ``billing=tel:+15550100,human=sip:desk@pbx`` (in a file: a table of them)."""

    @field_validator("operators", mode="before")
    @classmethod
    def _operators(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        operators: dict[str, str] = {}
        for item in filter(None, (s.strip() for s in value.split(","))):
            name, sep, target = item.partition("=")
            if not sep or not name.strip():
                raise ValueError(f"{item!r} is not name=target")
            operators[name.strip()] = target
        return operators

    @field_validator("operators")
    @classmethod
    def _targets(cls, value: dict[str, str]) -> dict[str, str]:
        return {name: sip_target(target) for name, target in value.items()}


@dataclass
class CallControl:
    """Configuration and implementation of the call-control tools.

    Args:
        operators: ``agent_id`` → phone number or SIP URI the caller is transferred to.
        locator: finds the call of a tool invocation (default: the LiveKit job).
        goodbye: the tool output that makes the LLM say goodbye before ``end_call`` hangs up.
        delete_room: ``end_call`` deletes the room (disconnecting the SIP caller) after the
            session closes; otherwise it only ends the agent's session.
        play_dialtone: the caller hears a dial tone during a transfer.
        ringing_timeout: seconds the operator's phone may ring (LiveKit's default if None).
        reason_header: SIP header carrying the transfer reason to the operator's desk
            (None to send no header).
    """

    operators: Mapping[str, str] = field(default_factory=dict)
    locator: CallLocator = job_call_locator
    goodbye: str = DEFAULT_GOODBYE
    delete_room: bool = True
    play_dialtone: bool = False
    ringing_timeout: float | None = None
    reason_header: str | None = "X-Handoff-Reason"
    tracer: trace.Tracer | None = None
    """Where spans go (default: the global tracer provider's ``handoff.tools`` tracer)."""
    _background: set[asyncio.Task[Any]] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self.operators = {k: sip_target(v) for k, v in self.operators.items()}

    def _tracer(self) -> trace.Tracer:
        return self.tracer or trace.get_tracer("handoff.tools")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> CallControl:
        """Operators from ``HANDOFF_OPERATORS="billing=tel:+15550100,human=sip:desk@pbx"``
        (:class:`OperatorSettings`; a bad one is a one-line ConfigError)."""
        return cls(operators=OperatorSettings.load(environ).operators, **kwargs)

    # -- the actions ----------------------------------------------------------------
    async def transfer(self, ctx: RunContext[Any], agent_id: str, reason: str) -> str:
        """SIP-transfer the caller to the operator ``agent_id`` (a REFER through LiveKit)."""
        with self._tracer().start_as_current_span("handoff.call.transfer_call") as span:
            span.set_attribute("handoff.agent_id", agent_id)
            handle = self._locate(ctx, span)  # first: in text mode that is the whole story
            target = self.operators.get(agent_id)
            if target is None:
                span.set_attribute("handoff.outcome", "unknown_agent")
                known = ", ".join(sorted(self.operators)) or "none configured"
                raise ToolError(f"unknown agent_id {agent_id!r}; use one of: {known}")
            if handle.caller_identity is None:
                span.set_attribute("handoff.outcome", "no_sip_caller")
                raise NoPhoneLine(
                    f"the caller is not on a phone line (no SIP participant in room "
                    f"{handle.room_name!r}), so the call cannot be transferred"
                )
            span.set_attribute("livekit.room", handle.room_name)
            request = api.TransferSIPParticipantRequest(
                room_name=handle.room_name,
                participant_identity=handle.caller_identity,
                transfer_to=target,
                play_dialtone=self.play_dialtone,
            )
            if self.reason_header and reason:
                request.headers[self.reason_header] = reason[:200]
            if self.ringing_timeout is not None:
                request.ringing_timeout.FromNanoseconds(int(self.ringing_timeout * 1e9))
            try:
                response = await handle.api.sip.transfer_sip_participant(request)
            except api.TwirpError as exc:
                span.set_attribute("handoff.outcome", "failed")
                span.record_exception(exc)
                raise ToolError(
                    f"the transfer to {agent_id} failed ({exc}); apologise and offer "
                    "another way to help"
                ) from None
            status = api.SIPTransferStatus.Name(response.status)
            span.set_attribute("handoff.outcome", status)
            if response.status == api.SIPTransferStatus.STS_TRANSFER_FAILED:
                raise ToolError(
                    f"the transfer to {agent_id} did not complete "
                    f"({api.SIPTransferReason.Name(response.reason)})"
                )
            logger.info("transferred the caller of room %s to %s", handle.room_name, agent_id)
            return f"the caller is being transferred to {agent_id}"

    async def end(self, ctx: RunContext[Any]) -> str:
        """Say goodbye, then end the session (and delete the room of a phone call)."""
        with self._tracer().start_as_current_span("handoff.call.end_call") as span:
            try:
                handle: CallHandle | None = self.locator(ctx)
            except NoPhoneLine:
                handle = None  # a text session still ends, there is just no room to remove
            span.set_attribute("handoff.has_room", handle is not None)
            if handle is not None:
                span.set_attribute("livekit.room", handle.room_name)
            session = ctx.session

            def _after_goodbye(_: Any) -> None:
                session.shutdown(drain=True)

            # the goodbye the LLM says in reply to this tool reuses this speech handle
            ctx.speech_handle.add_done_callback(_after_goodbye)
            if handle is not None:
                session.once("close", lambda _ev: self._on_closed(handle))
            return self.goodbye

    async def send_dtmf(self, ctx: RunContext[Any], digits: str) -> str:
        """Send DTMF tones (an IVR menu choice, an extension) on the phone line."""
        with self._tracer().start_as_current_span("handoff.call.send_dtmf") as span:
            digits = digits.replace(" ", "").upper()
            span.set_attribute("handoff.dtmf_count", len(digits))
            bad = sorted({d for d in digits if d not in DTMF_CODES})
            if not digits or bad:
                raise ToolError(f"DTMF digits must be 0-9, *, #, A-D; got {''.join(bad) or 'none'}")
            handle = self._locate(ctx, span)
            if handle.dtmf is None or handle.caller_identity is None:
                raise NoPhoneLine("this call has no phone line to send DTMF tones on")
            for i, digit in enumerate(digits):
                if i:
                    await asyncio.sleep(DTMF_GAP)
                await handle.dtmf.publish_dtmf(code=DTMF_CODES[digit], digit=digit)
            return f"sent DTMF {digits}"

    # -- the tools ------------------------------------------------------------------
    # The tools are closures over this CallControl; their annotations are set as objects
    # (this module uses postponed annotations, which LiveKit could not resolve in a closure).
    def transfer_call_tool(self) -> llm.FunctionTool:
        known = ", ".join(f"'{k}'" for k in sorted(self.operators)) or "(none configured)"

        async def transfer_call(ctx: RunContext[Any], agent_id: str, reason: str) -> str:
            return await self.transfer(ctx, agent_id, reason)

        transfer_call.__annotations__ = {
            "ctx": RunContext,
            "agent_id": Annotated[str, Field(description=f"who takes the call: one of {known}")],
            "reason": Annotated[str, Field(description="one sentence for the human taking over")],
            "return": str,
        }
        return _free(transfer_call, "transfer_call",
                     "Transfer the caller to a human agent by phone. Call it when the caller "
                     f"asks for a person or you cannot help. agent_id is one of {known}.")

    def end_call_tool(self) -> llm.FunctionTool:
        async def end_call(ctx: RunContext[Any]) -> str:
            return await self.end(ctx)

        end_call.__annotations__ = {"ctx": RunContext, "return": str}
        return _free(end_call, "end_call",
                     "End the call. Call it only when the caller is done and has said so; "
                     "you will then say goodbye and the line hangs up.")

    def send_dtmf_tool(self) -> llm.FunctionTool:
        async def send_dtmf(ctx: RunContext[Any], digits: str) -> str:
            return await self.send_dtmf(ctx, digits)

        send_dtmf.__annotations__ = {
            "ctx": RunContext,
            "digits": Annotated[str, Field(description="the keys to press: 0-9, *, #")],
            "return": str,
        }
        return _free(send_dtmf, "send_dtmf",
                     "Press phone keys (DTMF) on the line, e.g. to choose an option of a "
                     "phone menu or dial an extension.")

    def tools(self) -> list[llm.FunctionTool]:
        """transfer_call, end_call and send_dtmf, ready for ``Agent(tools=...)``."""
        return [self.transfer_call_tool(), self.end_call_tool(), self.send_dtmf_tool()]

    async def wait_idle(self) -> None:
        """Wait for background work (room deletion after a text-less worker-less end)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # -- internals ------------------------------------------------------------------
    def _locate(self, ctx: RunContext[Any], span: trace.Span) -> CallHandle:
        try:
            return self.locator(ctx)
        except NoPhoneLine:
            span.set_attribute("handoff.outcome", "no_phone_line")
            raise

    def _on_closed(self, handle: CallHandle) -> None:
        async def delete() -> None:
            with self._tracer().start_as_current_span("handoff.call.delete_room") as span:
                span.set_attribute("livekit.room", handle.room_name)
                try:
                    await handle.api.room.delete_room(api.DeleteRoomRequest(room=handle.room_name))
                except api.TwirpError as exc:
                    if exc.code != api.TwirpErrorCode.NOT_FOUND:
                        span.record_exception(exc)
                        logger.warning("could not delete room %s: %s", handle.room_name, exc)

        if handle.job is not None:  # in a worker: delete (if asked), then end the job
            if self.delete_room:
                handle.job.add_shutdown_callback(delete)
            handle.job.shutdown(reason="call ended")
        elif self.delete_room:
            task = asyncio.get_running_loop().create_task(delete())
            self._background.add(task)
            task.add_done_callback(self._background.discard)


class _FreeFunctionTool(llm.FunctionTool):
    """A function tool that stays unbound when set as a class attribute of a State/Agent.

    LiveKit binds class-level tools to the agent (``self``); these are closures over
    a :class:`CallControl`, so the agent is not passed to them.
    """

    def __get__(self, obj: Any, objtype: type | None = None) -> _FreeFunctionTool:
        return self


def _free(func: Callable[..., Awaitable[str]], name: str, description: str) -> llm.FunctionTool:
    return _FreeFunctionTool(func, function_tool(func, name=name, description=description).info)
