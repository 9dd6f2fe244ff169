"""Call-control tools driven by a scripted LLM through a real AgentSession.

There is no LiveKit server here. The requests the *real* livekit-api client sends
(``TransferSIPParticipant``, ``DeleteRoom``) go to a local aiohttp endpoint on
127.0.0.1 that checks them the way a LiveKit server would: the twirp URL path, the
``Authorization`` bearer JWT (signature verified with the API secret by PyJWT, the
issuer, the grants), the protobuf body. What this does not cover: the SIP REFER
itself, LiveKit finding the SIP participant of a real room (``job_call_locator``
needs a connected ``rtc.Room``), and DTMF reaching the phone network (``send_dtmf``
is checked against a recording sender, since ``rtc.LocalParticipant.publish_dtmf``
needs a connected room).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from aiohttp import web
from livekit import api
from livekit.agents import Agent, AgentSession, RunContext, llm
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from handoff import Context, Flow, State, transition
from handoff.errors import ConfigError
from handoff.testing.scripted import ScriptedLLM, call
from handoff.tools import CallControl, CallHandle, NoPhoneLine, sip_target

API_KEY = "APItestkey"
API_SECRET = "s3cret-" + "x" * 33


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeLiveKit:
    """A local twirp endpoint: records requests, answers like LiveKit would."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    transfer_reply: tuple[int, bytes] = (
        200, api.TransferSIPParticipantResponse(
            transfer_id="TR_1", status=api.SIPTransferStatus.STS_TRANSFER_SUCCESSFUL).SerializeToString())

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(request.path, dict(request.headers), await request.read()))
        if request.path == "/twirp/livekit.SIP/TransferSIPParticipant":
            status, body = self.transfer_reply
        elif request.path == "/twirp/livekit.RoomService/DeleteRoom":
            status, body = 200, api.DeleteRoomResponse().SerializeToString()
        else:
            status, body = 404, json.dumps({"code": "bad_route", "msg": request.path}).encode()
        ctype = "application/protobuf" if status == 200 else "application/json"
        return web.Response(status=status, body=body, content_type=ctype)

    def claims(self, rec: Received) -> dict[str, Any]:
        """The verified JWT claims of a request (fails if the signature is wrong)."""
        scheme, _, token = rec.headers["Authorization"].partition(" ")
        assert scheme == "Bearer"
        return jwt.decode(token, API_SECRET, algorithms=["HS256"])


@pytest.fixture
async def livekit_server() -> AsyncIterator[FakeLiveKit]:
    server = FakeLiveKit()
    app = web.Application()
    app.router.add_post("/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"http://127.0.0.1:{port}"
    yield server
    await runner.cleanup()


@pytest.fixture
async def lkapi(livekit_server: FakeLiveKit) -> AsyncIterator[api.LiveKitAPI]:
    client = api.LiveKitAPI(livekit_server.url, API_KEY, API_SECRET)
    yield client
    await client.aclose()


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@dataclass
class RecordingDtmf:
    sent: list[tuple[int, str]] = field(default_factory=list)

    async def publish_dtmf(self, *, code: int, digit: str) -> None:
        self.sent.append((code, digit))


def phone_call(lkapi: api.LiveKitAPI, dtmf: RecordingDtmf | None = None,
               caller: str | None = "sip_+15551234") -> Any:
    def locate(ctx: RunContext[Any]) -> CallHandle:
        return CallHandle(room_name="call-42", api=lkapi, caller_identity=caller, dtmf=dtmf)
    return locate


def tool_outputs(model: ScriptedLLM) -> list[llm.FunctionCallOutput]:
    """Every tool output the model saw (the last request's chat context holds them all)."""
    return model.turns[-1].tool_outputs() if model.turns else []


async def talk(calls: CallControl, script: list[Any], text: str = "hello") -> ScriptedLLM:
    model = ScriptedLLM(script)
    async with AgentSession(llm=model) as session:
        await session.start(Agent(instructions="You answer calls.", tools=calls.tools()))
        await session.run(user_input=text)
    return model


def span_text(exporter: InMemorySpanExporter) -> str:
    finished: tuple[ReadableSpan, ...] = exporter.get_finished_spans()
    return repr([(s.name, dict(s.attributes or {}), [e.attributes for e in s.events])
                 for s in finished])


# -- transfer_call -------------------------------------------------------------------
async def test_transfer_sends_the_exact_sip_transfer_request(
    livekit_server: FakeLiveKit, lkapi: api.LiveKitAPI, spans: Any
) -> None:
    provider, exporter = spans
    calls = CallControl(operators={"billing": "+1 555 0100", "human": "sip:desk@pbx.example"},
                        locator=phone_call(lkapi), tracer=provider.get_tracer("t"),
                        ringing_timeout=25)
    model = await talk(calls, [call("transfer_call", agent_id="billing",
                                    reason="disputes a roaming charge"),
                               "I am transferring you now."])

    [rec] = livekit_server.received
    assert rec.path == "/twirp/livekit.SIP/TransferSIPParticipant"
    assert rec.headers["Content-Type"] == "application/protobuf"
    claims = livekit_server.claims(rec)
    assert claims["iss"] == API_KEY and claims["exp"] > time.time()
    assert claims["video"]["roomAdmin"] is True and claims["video"]["room"] == "call-42"
    assert claims["sip"]["call"] is True
    body = api.TransferSIPParticipantRequest.FromString(rec.body)
    assert body.room_name == "call-42"
    assert body.participant_identity == "sip_+15551234"
    assert body.transfer_to == "tel:+15550100"
    assert dict(body.headers) == {"X-Handoff-Reason": "disputes a roaming charge"}
    assert body.ringing_timeout.ToSeconds() == 25

    [out] = tool_outputs(model)
    assert not out.is_error and "transferred to billing" in out.output
    [span] = exporter.get_finished_spans()
    assert span.name == "handoff.call.transfer_call"
    assert span.attributes == {"handoff.agent_id": "billing", "livekit.room": "call-42",
                               "handoff.outcome": "STS_TRANSFER_SUCCESSFUL"}
    text = span_text(exporter)
    assert API_SECRET not in text and "roaming" not in text  # no secret, no caller words


async def test_transfer_in_text_mode_is_a_tool_error_and_the_session_goes_on(
    livekit_server: FakeLiveKit, spans: Any
) -> None:
    provider, exporter = spans
    calls = CallControl(operators={"human": "tel:+15550199"}, tracer=provider.get_tracer("t"))
    model = await talk(calls, [call("transfer_call", agent_id="human", reason="asked"),
                               "I cannot transfer you from this chat; someone will call back."])
    [out] = tool_outputs(model)
    assert out.is_error and "not connected to a phone call" in out.output
    assert len(model.turns) == 2  # the LLM got the error and answered the caller
    assert livekit_server.received == []
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None and span.attributes["handoff.outcome"] == "no_phone_line"


async def test_transfer_refuses_unknown_agents_and_callers_not_on_sip(
    livekit_server: FakeLiveKit, lkapi: api.LiveKitAPI
) -> None:
    calls = CallControl(operators={"billing": "tel:+15550100"}, locator=phone_call(lkapi))
    model = await talk(calls, [call("transfer_call", agent_id="sales", reason="x"), "ok"])
    [out] = tool_outputs(model)
    assert out.is_error and "unknown agent_id 'sales'" in out.output and "billing" in out.output

    web_caller = CallControl(operators={"billing": "tel:+15550100"},
                             locator=phone_call(lkapi, caller=None))
    model = await talk(web_caller, [call("transfer_call", agent_id="billing", reason="x"), "ok"])
    [out] = tool_outputs(model)
    assert out.is_error and "not on a phone line" in out.output
    assert livekit_server.received == []


async def test_a_failed_transfer_tells_the_llm_why(
    livekit_server: FakeLiveKit, lkapi: api.LiveKitAPI
) -> None:
    livekit_server.transfer_reply = (400, json.dumps({
        "code": "failed_precondition", "msg": "transfer failed",
        "meta": {"sip_status_code": "486", "sip_status": "Busy Here"}}).encode())
    calls = CallControl(operators={"billing": "tel:+15550100"}, locator=phone_call(lkapi))
    model = await talk(calls, [call("transfer_call", agent_id="billing", reason="x"), "sorry"])
    [out] = tool_outputs(model)
    assert out.is_error and "failed" in out.output and "486 Busy Here" in out.output

    livekit_server.transfer_reply = (200, api.TransferSIPParticipantResponse(
        status=api.SIPTransferStatus.STS_TRANSFER_FAILED,
        reason=api.SIPTransferReason.STR_RINGING_TIMEOUT).SerializeToString())
    model = await talk(calls, [call("transfer_call", agent_id="billing", reason="x"), "sorry"])
    [out] = tool_outputs(model)
    assert out.is_error and "STR_RINGING_TIMEOUT" in out.output


# -- end_call ------------------------------------------------------------------------
async def test_end_call_says_goodbye_then_closes_the_session_and_deletes_the_room(
    livekit_server: FakeLiveKit, lkapi: api.LiveKitAPI, spans: Any
) -> None:
    provider, exporter = spans
    calls = CallControl(locator=phone_call(lkapi), tracer=provider.get_tracer("t"))
    model = ScriptedLLM([call("end_call"), "Thanks for calling, goodbye!"])
    session: AgentSession[Any] = AgentSession(llm=model)
    closed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    session.on("close", lambda ev: closed.done() or closed.set_result(ev))
    await session.start(Agent(instructions="You answer calls.", tools=calls.tools()))
    result = await session.run(user_input="that's all, thanks")
    await asyncio.wait_for(closed, 5)
    await calls.wait_idle()

    said = [e.item.text_content for e in result.events if e.type == "message"]
    assert said == ["Thanks for calling, goodbye!"]  # the goodbye was spoken before closing
    [out] = tool_outputs(model)
    assert "goodbye" in out.output
    [rec] = livekit_server.received
    assert rec.path == "/twirp/livekit.RoomService/DeleteRoom"
    assert api.DeleteRoomRequest.FromString(rec.body).room == "call-42"
    assert livekit_server.claims(rec)["video"]["roomCreate"] is True
    names = sorted(s.name for s in exporter.get_finished_spans())
    assert names == ["handoff.call.delete_room", "handoff.call.end_call"]


async def test_end_call_in_text_mode_ends_the_session_without_a_room(
    livekit_server: FakeLiveKit,
) -> None:
    calls = CallControl()
    model = ScriptedLLM([call("end_call"), "Goodbye!"])
    session: AgentSession[Any] = AgentSession(llm=model)
    closed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    session.on("close", lambda ev: closed.done() or closed.set_result(ev))
    await session.start(Agent(instructions="x", tools=calls.tools()))
    await session.run(user_input="bye")
    await asyncio.wait_for(closed, 5)
    assert livekit_server.received == []


# -- send_dtmf -----------------------------------------------------------------------
async def test_send_dtmf_presses_each_key_with_its_rfc4733_code(lkapi: api.LiveKitAPI) -> None:
    dtmf = RecordingDtmf()
    calls = CallControl(locator=phone_call(lkapi, dtmf))
    model = await talk(calls, [call("send_dtmf", digits="1 2#*"), "done"])
    assert dtmf.sent == [(1, "1"), (2, "2"), (11, "#"), (10, "*")]
    assert not tool_outputs(model)[0].is_error

    model = await talk(calls, [call("send_dtmf", digits="12x"), "hm"])
    [out] = tool_outputs(model)
    assert out.is_error and "got X" in out.output
    model = await talk(CallControl(), [call("send_dtmf", digits="1"), "hm"])
    assert tool_outputs(model)[0].is_error


# -- usable from any State -------------------------------------------------------------
class Call(Context):
    done: bool = False


CALLS = CallControl(operators={"human": "tel:+15550199"})


class Desk(State[Call]):
    """Answers and can pass the call on."""

    instructions = "Help the caller."
    transfer_call = CALLS.transfer_call_tool()
    end_call = CALLS.end_call_tool()

    @transition(to="Closed")
    async def finished(self, ctx: RunContext[Call]) -> None:
        """Call when the caller's question is answered."""


class Closed(State[Call]):
    """The call is over."""

    instructions = "Say goodbye."


async def test_tools_as_class_attributes_of_a_state_reach_the_llm() -> None:
    assert {"transfer_call", "end_call"} <= set(Desk.tool_names())
    flow = Flow("desk", context=Call, initial=Desk, states=[Desk, Closed], final=[Closed])
    model = ScriptedLLM(["Hello, how can I help?",
                         call("transfer_call", agent_id="human", reason="wants a person"),
                         "Sorry, I cannot transfer from this chat."])
    async with flow.session(llm=model) as run:
        assert run.session is not None
        await run.session.run(user_input="a person please")
    assert {"transfer_call", "end_call", "finished"} <= set(model.turns[0].tool_names)
    [out] = tool_outputs(model)
    assert out.is_error and "not connected to a phone call" in out.output  # not a crash


def test_operator_targets_are_normalised_and_configurable_from_env() -> None:
    assert sip_target("+1 555-0100") == "tel:+15550100"
    assert sip_target("sip:desk@pbx") == "sip:desk@pbx"
    with pytest.raises(ValueError, match="neither a phone number"):
        sip_target("desk")
    calls = CallControl.from_env({"HANDOFF_OPERATORS": "billing=+15550100, human=sip:d@pbx"})
    assert calls.operators == {"billing": "tel:+15550100", "human": "sip:d@pbx"}
    with pytest.raises(ConfigError) as caught:
        CallControl.from_env({"HANDOFF_OPERATORS": "oops"})
    assert str(caught.value) == "HANDOFF_OPERATORS = 'oops': Value error, 'oops' is not name=target"
    with pytest.raises(ConfigError, match=r"^HANDOFF_OPERATORS = 'desk=front': Value error, "
                                          r"operator target 'front' is neither a phone number"):
        CallControl.from_env({"HANDOFF_OPERATORS": "desk=front"})
    assert issubclass(NoPhoneLine, llm.ToolError)


async def test_a_simulated_or_console_job_has_no_phone_line(livekit_server: FakeLiveKit) -> None:
    """In LiveKit's fake job (console mode, --simulate-call) the default locator finds a
    job context but no real room: the tools say so instead of calling the server."""
    from livekit.agents.testing import fake_job_context

    with fake_job_context():
        model = await talk(CallControl(operators={"human": "tel:+15550199"}),
                           [call("transfer_call", agent_id="human", reason="x"), "ok"])
    [out] = tool_outputs(model)
    assert out.is_error and "simulated call" in out.output
    assert livekit_server.received == []


async def test_end_call_can_keep_the_room(
    livekit_server: FakeLiveKit, lkapi: api.LiveKitAPI
) -> None:
    calls = CallControl(locator=phone_call(lkapi), delete_room=False)
    session: AgentSession[Any] = AgentSession(llm=ScriptedLLM([call("end_call"), "Bye!"]))
    closed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    session.on("close", lambda ev: closed.done() or closed.set_result(ev))
    await session.start(Agent(instructions="x", tools=calls.tools()))
    await session.run(user_input="bye")
    await asyncio.wait_for(closed, 5)
    await calls.wait_idle()
    assert livekit_server.received == []  # the session ended, the room was left alone
