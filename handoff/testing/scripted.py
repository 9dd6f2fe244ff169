"""ScriptedLLM: a deterministic livekit ``llm.LLM`` for tests, demos and benchmarks.

It goes through the same interface as a real provider (``LLM.chat`` returns an
``LLMStream`` that streams ``ChatChunk``s), so the AgentSession code paths that run
are the real ones: text arrives in chunks, tool calls arrive as calls, several at
once when asked, and errors surface as provider errors.

Replies come from a script (consumed one per LLM request) or a policy function
of the :class:`Turn` (what the agent sent: chat context, offered tools)::

    llm = ScriptedLLM([
        call("caller_identified", name="Ann"),   # a tool call
        "Hello Ann, how can I help?",            # text
        [call("a"), call("b")],                  # parallel tool calls
    ])
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import APIConnectionError, APIConnectOptions, llm
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr
from pydantic_core import to_jsonable_python

from .._livekit import asking_agent_id
from ..errors import ScriptExhausted

_ids = itertools.count()


@dataclass(frozen=True)
class ToolCall:
    """One function call the scripted model makes."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


def call(name: str, /, **arguments: Any) -> ToolCall:
    """A tool call: ``call("billing_question")``, ``call("refund", amount=20)``."""
    return ToolCall(name, arguments)


@dataclass(frozen=True)
class Reply:
    """Text and/or tool calls in one response, with optional delay or failure."""

    text: str = ""
    calls: tuple[ToolCall, ...] = ()
    delay: float = 0.0
    error: Exception | None = None
    pause: Callable[[], Awaitable[None]] | None = None
    """Awaited before the reply streams: lets a test hold the model mid-request."""
    calls_first: bool = False
    """Stream the tool calls before the text (LiveKit starts tools while text streams)."""
    pause_between: Callable[[], Awaitable[None]] | None = None
    """Awaited between the first part and the second: holds the stream open."""


def fail(message: str = "scripted provider failure", *, retryable: bool = True) -> Reply:
    """A reply that fails like a provider outage (an ``APIConnectionError``)."""
    return Reply(error=APIConnectionError(message, retryable=retryable))


ReplyLike = str | ToolCall | Sequence[ToolCall] | Reply


@dataclass(frozen=True)
class Turn:
    """What the agent sent to the model for one request."""

    index: int
    chat_ctx: llm.ChatContext
    tool_names: tuple[str, ...]
    instructions: str
    agent_id: str | None = None
    """The id of the LiveKit agent asking (a handoff State's id is its state name);
    None when the request did not come from an agent's turn."""

    @property
    def state(self) -> str | None:
        """The flow state whose agent made this request (same as ``agent_id``)."""
        return self.agent_id

    @property
    def last_user_text(self) -> str:
        for item in reversed(self.chat_ctx.items):
            if item.type == "message" and item.role == "user":
                return item.text_content or ""
        return ""

    @property
    def answering_tool(self) -> bool:
        """True when this request follows tool outputs (the model is to comment on them)."""
        for item in reversed(self.chat_ctx.items):
            if item.type == "function_call_output":
                return True
            if item.type == "message" and item.role == "user":
                return False
        return False

    def tool_outputs(self) -> list[llm.FunctionCallOutput]:
        """Tool outputs since the last user message, oldest first."""
        outputs: list[llm.FunctionCallOutput] = []
        for item in reversed(self.chat_ctx.items):
            if item.type == "message" and item.role == "user":
                break
            if item.type == "function_call_output":
                outputs.insert(0, item)
        return outputs

    def messages(self) -> list[tuple[str, str]]:
        """(role, text) of the user/assistant messages the model was given."""
        return [
            (item.role, item.text_content or "")
            for item in self.chat_ctx.items
            if item.type == "message" and item.role in ("user", "assistant")
        ]


Policy = Callable[[Turn], ReplyLike]


def per_state(
    replies: Mapping[str, Policy | ReplyLike], default: Policy | ReplyLike = "Okay."
) -> Policy:
    """A policy answering by the state whose agent asks (``turn.state``).

    Values are a reply, or a policy of the turn for that state::

        ScriptedLLM(per_state({
            "Greeter": lambda t: "Hello!" if not t.last_user_text else
                                 call("caller_identified", name="Ann", topic="bill"),
            "Triage": call("escalate_to_human", reason="asked for a person"),
        }))
    """

    def policy(turn: Turn) -> ReplyLike:
        chosen = replies.get(turn.state or "", default)
        return chosen(turn) if callable(chosen) else chosen

    return policy


class Scripted:
    """The script side ScriptedLLM and ScriptedRealtimeModel share: the replies (a list,
    consumed one per request, or a policy of the :class:`Turn`), the requests seen, the
    model's name."""

    turns: list[Turn]
    """Every request the model answered, in order."""

    def _load(self, replies: Iterable[ReplyLike] | Policy, chunk_words: int, model: str) -> None:
        self._policy: Policy | None = replies if callable(replies) else None
        self._script: list[ReplyLike] = [] if callable(replies) else list(replies)
        self._chunk_words = chunk_words
        self._model = model
        self.turns = []

    @property
    def model(self) -> str:
        return self._model

    @property
    def provider(self) -> str:
        return "handoff.testing"

    @property
    def remaining(self) -> int:
        """Script replies not yet used (0 for a policy)."""
        return len(self._script)

    def _reply_to(self, turn: Turn) -> Reply:
        """Record ``turn`` and give its reply."""
        self.turns.append(turn)
        return next_reply(self._policy, self._script, turn, type(self).__name__)

    def _chunks(self, text: str) -> list[str]:
        return chunks(text, self._chunk_words)


class ScriptedLLM(Scripted, llm.LLM):
    """A deterministic model: replies from a script or a policy; records every request."""

    def __init__(
        self,
        replies: Iterable[ReplyLike] | Policy,
        *,
        chunk_words: int = 3,
        model: str = "scripted",
    ) -> None:
        super().__init__()
        self._load(replies, chunk_words, model)

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        tools = tools or []
        names = tuple(t.id for t in tools if isinstance(t, llm.FunctionTool | llm.RawFunctionTool))
        instructions = next(
            (
                item.text_content or ""
                for item in chat_ctx.items
                if item.type == "message" and item.role in ("system", "developer")
            ),
            "",
        )
        turn = Turn(len(self.turns), chat_ctx.copy(), names, instructions, asking_agent_id())
        return _ScriptedStream(self, self._reply_to(turn), chat_ctx=chat_ctx, tools=tools,
                               conn_options=conn_options)


def next_reply(policy: Policy | None, script: list[ReplyLike], turn: Turn, owner: str) -> Reply:
    """The reply to ``turn``: the policy's answer, or the next script entry (consumed);
    an exhausted script answers with a :class:`ScriptExhausted` failure."""
    if policy is not None:
        return as_reply(policy(turn))
    if not script:
        return Reply(error=ScriptExhausted(
            f"{owner} has no reply left for request #{turn.index} "
            f"(last user line: {turn.last_user_text!r})"))
    return as_reply(script.pop(0))


def chunks(text: str, words_per_chunk: int) -> list[str]:
    """``text`` cut into pieces of ``words_per_chunk`` words, as a model streams it."""
    words = text.split(" ")
    n = max(1, words_per_chunk)
    return [" ".join(words[i : i + n]) + (" " if i + n < len(words) else "")
            for i in range(0, len(words), n)]


def as_json(arguments: Mapping[str, Any]) -> str:
    """Tool-call arguments as the JSON a real model sends: pydantic models as objects,
    enums as their values, dates as ISO strings, sets and tuples as arrays."""
    return json.dumps(to_jsonable_python(dict(arguments)))


def as_reply(value: ReplyLike) -> Reply:
    if isinstance(value, Reply):
        return value
    if isinstance(value, str):
        return Reply(text=value)
    if isinstance(value, ToolCall):
        return Reply(calls=(value,))
    return Reply(calls=tuple(value))


class _ScriptedStream(llm.LLMStream):
    def __init__(self, owner: ScriptedLLM, reply: Reply, **kwargs: Any) -> None:
        super().__init__(owner, **kwargs)
        self._owner = owner
        self._reply = reply

    async def _run(self) -> None:
        reply = self._reply
        request_id = f"scripted-{next(_ids)}"
        if reply.pause is not None:
            await reply.pause()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.error is not None:
            raise reply.error
        parts = [self._send_text, self._send_calls]
        if reply.calls_first:
            parts.reverse()
        parts[0](request_id)
        if reply.pause_between is not None:
            await reply.pause_between()
        parts[1](request_id)

    def _send_text(self, request_id: str) -> None:
        if self._reply.text:
            for piece in self._owner._chunks(self._reply.text):
                self._event_ch.send_nowait(llm.ChatChunk(
                    id=request_id, delta=llm.ChoiceDelta(role="assistant", content=piece)))

    def _send_calls(self, request_id: str) -> None:
        if self._reply.calls:
            self._event_ch.send_nowait(llm.ChatChunk(
                id=request_id,
                delta=llm.ChoiceDelta(role="assistant", tool_calls=[
                    llm.FunctionToolCall(name=c.name, arguments=as_json(c.arguments),
                                         call_id=f"call_{next(_ids)}")
                    for c in self._reply.calls
                ]),
            ))
