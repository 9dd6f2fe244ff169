"""ScriptedRealtimeModel: a deterministic livekit ``llm.RealtimeModel`` (speech to speech), offline.

The scripted counterpart of a provider's realtime plugin (``livekit.plugins.openai.realtime``),
built on LiveKit's public realtime types only, so a real ``AgentSession`` drives it
through its own realtime code path: a user line reaches the session as
``update_chat_ctx`` + ``generate_reply()``; each reply is a ``GenerationCreatedEvent``
whose message stream carries a :class:`~livekit.agents.llm.MessageGeneration` (text
in chunks, synthetic audio when the model has the audio modality) and whose function
stream carries the tool calls. Replies come from the same script format as
:class:`~handoff.testing.ScriptedLLM` (a list, or a policy of the :class:`Turn`)::

    model = ScriptedRealtimeModel([
        "Hello, who is calling?",
        call("caller_identified", name="Ann"),
        "Hi Ann!",
    ])

The contract LiveKit relies on and this model keeps (as the OpenAI plugin does):

- every generation closes its message stream, each message's text and audio streams,
  and its function stream, and resolves each message's ``modalities``, also when it is
  interrupted or the session closes (LiveKit would otherwise wait forever);
- ``generate_reply()`` returns a future resolved with a ``user_initiated`` event (or a
  ``RealtimeError``); ``generation_created`` is emitted for every generation, and a
  generation the model starts by itself (``auto_tool_reply=True``) is not user-initiated;
- the session keeps its own chat context, with its own replies and function calls in
  it (LiveKit builds every update from ``session.chat_ctx``); ``truncate`` rewrites the
  interrupted message to what was heard;
- the ``mutable`` flag is the provider's ``mutable_chat_context`` /
  ``mutable_instructions`` / ``mutable_tools``: LiveKit reuses the session across an
  agent switch when it may, and closes it and opens a new one when it may not.

Input is text only (``push_audio`` ignores frames): a text-mode session with no room.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from livekit import rtc
from livekit.agents import llm, utils
from livekit.agents.types import NOT_GIVEN, NotGivenOr

from .._livekit import asking_agent_id
from .scripted import Policy, Reply, ReplyLike, Scripted, ToolCall, Turn, as_json

Modality = Literal["text", "audio"]

SAMPLE_RATE = 24_000
"""Sample rate of the synthetic audio (the OpenAI realtime API's)."""
AUDIO_MS_PER_WORD = 300
"""Length of the synthetic (silent) audio per spoken word."""

_ids = itertools.count()


@dataclass(frozen=True)
class Truncation:
    """One ``truncate()`` LiveKit asked for after an interruption."""

    message_id: str
    modalities: tuple[Modality, ...]
    audio_end_ms: int
    transcript: str | None


class ScriptedRealtimeModel(Scripted, llm.RealtimeModel):
    """A deterministic realtime model: replies from a script or a policy; records every
    request (``turns``) and every session it opened (``sessions``)."""

    def __init__(
        self,
        replies: Iterable[ReplyLike] | Policy,
        *,
        modalities: Sequence[Modality] = ("text",),
        mutable: bool = True,
        auto_tool_reply: bool = False,
        chunk_words: int = 3,
        model: str = "scripted-realtime",
    ) -> None:
        super().__init__(capabilities=llm.RealtimeCapabilities(
            message_truncation=True,
            turn_detection=False,  # no server-side VAD offline: turns are committed as text
            user_transcription=False,
            auto_tool_reply_generation=auto_tool_reply,
            audio_output="audio" in modalities,
            manual_function_calls=True,
            mutable_chat_context=mutable,
            mutable_instructions=mutable,
            mutable_tools=mutable,
            per_response_tool_choice=True,
        ))
        self._load(replies, chunk_words, model)
        self.modalities: list[Modality] = ["audio", "text"] if "audio" in modalities else ["text"]
        self.sessions: list[ScriptedRealtimeSession] = []

    def session(self, *, turn_detection_disabled: bool = False) -> ScriptedRealtimeSession:
        opened = ScriptedRealtimeSession(self)
        self.sessions.append(opened)
        return opened

    async def aclose(self) -> None:
        for opened in self.sessions:
            await opened.aclose()


@dataclass
class _Generation:
    """The channels of one response; ``close()`` ends every stream and resolves every
    ``modalities`` future, whatever state the response is in."""

    message_ch: utils.aio.Chan[llm.MessageGeneration] = field(default_factory=utils.aio.Chan)
    function_ch: utils.aio.Chan[llm.FunctionCall] = field(default_factory=utils.aio.Chan)
    streams: list[utils.aio.Chan[Any]] = field(default_factory=list)
    modalities: list[asyncio.Future[list[Modality]]] = field(default_factory=list)

    def close(self, resolved: list[Modality]) -> None:
        for fut in self.modalities:
            if not fut.done():
                fut.set_result(resolved)
        for ch in (*self.streams, self.function_ch, self.message_ch):
            if not ch.closed:
                ch.close()


class ScriptedRealtimeSession(llm.RealtimeSession):
    """One realtime session of a :class:`ScriptedRealtimeModel`."""

    def __init__(self, model: ScriptedRealtimeModel) -> None:
        super().__init__(model)
        self._scripted = model
        self._chat_ctx = llm.ChatContext.empty()
        self._tools = llm.ToolContext.empty()
        self.instructions = ""
        self.tool_choice: llm.ToolChoice | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.truncations: list[Truncation] = []
        self.interruptions = 0
        """``interrupt()`` calls that cancelled a generation in progress."""
        self.closed = False

    @property
    def generating(self) -> bool:
        """True while a response is being generated (or waits on its ``pause``)."""
        return any(not task.done() for task in self._running)

    @property
    def chat_ctx(self) -> llm.ChatContext:
        return self._chat_ctx.copy()

    @property
    def tools(self) -> llm.ToolContext:
        return llm.ToolContext(self._tools.flatten())

    async def update_instructions(self, instructions: str) -> None:
        self.instructions = instructions

    async def update_chat_ctx(self, chat_ctx: llm.ChatContext) -> None:
        known = {item.id for item in self._chat_ctx.items}
        self._chat_ctx = chat_ctx.copy(
            exclude_instructions=True, exclude_handoff=True, exclude_config_update=True)
        if self._scripted.capabilities.auto_tool_reply_generation and any(
            item.type == "function_call_output" and item.id not in known
            for item in self._chat_ctx.items
        ):
            self._start(None, NOT_GIVEN, NOT_GIVEN)  # the model answers its tools by itself

    async def update_tools(self, tools: list[llm.Tool]) -> None:
        self._tools = llm.ToolContext(tools)

    def update_options(self, *, tool_choice: NotGivenOr[llm.ToolChoice | None] = NOT_GIVEN) -> None:
        if utils.is_given(tool_choice):
            self.tool_choice = tool_choice

    def push_audio(self, frame: rtc.AudioFrame) -> None:
        """Ignored: the scripted model hears text turns only."""

    def push_video(self, frame: rtc.VideoFrame) -> None:
        """Ignored."""

    def commit_audio(self) -> None:
        """Nothing to commit: input is text."""

    def clear_audio(self) -> None:
        """Nothing to clear: input is text."""

    def generate_reply(
        self,
        *,
        instructions: NotGivenOr[str] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        tools: NotGivenOr[list[llm.Tool]] = NOT_GIVEN,
    ) -> asyncio.Future[llm.GenerationCreatedEvent]:
        created: asyncio.Future[llm.GenerationCreatedEvent] = (
            asyncio.get_running_loop().create_future())
        if self.closed:
            created.set_exception(llm.RealtimeError("the realtime session is closed"))
            return created
        task = self._start(created, instructions, tools)
        # LiveKit cancels the future when the speech is interrupted before the reply
        # exists: the response is then cancelled too (OpenAI's ``response.cancel``)
        created.add_done_callback(lambda f: task.cancel() if f.cancelled() else None)
        return created

    def interrupt(self) -> None:
        active = [task for task in self._running if not task.done()]
        for task in active:
            task.cancel()
        self.interruptions += bool(active)

    def truncate(
        self,
        *,
        message_id: str,
        modalities: list[Modality],
        audio_end_ms: int,
        audio_transcript: NotGivenOr[str] = NOT_GIVEN,
    ) -> None:
        heard = audio_transcript if utils.is_given(audio_transcript) else None
        self.truncations.append(Truncation(message_id, tuple(modalities), audio_end_ms, heard))
        index = self._chat_ctx.index_by_id(message_id)
        if index is None:
            return
        if "audio" in modalities and audio_end_ms <= 0:
            del self._chat_ctx.items[index]  # nothing was heard
        elif heard is not None:
            self._chat_ctx.items[index] = llm.ChatMessage(
                id=message_id, role="assistant", content=[heard], interrupted=True)

    async def aclose(self) -> None:
        self.closed = True
        self.interrupt()
        await asyncio.gather(*self._running, return_exceptions=True)

    def _start(
        self,
        created: asyncio.Future[llm.GenerationCreatedEvent] | None,
        instructions: NotGivenOr[str],
        tools: NotGivenOr[list[llm.Tool]],
    ) -> asyncio.Task[None]:
        offered = llm.ToolContext(tools) if utils.is_given(tools) else self._tools
        names = tuple(offered.function_tools)
        said = "\n".join(filter(None, (self.instructions, instructions or "")))
        turn = Turn(len(self._scripted.turns), self._chat_ctx.copy(), names, said,
                    asking_agent_id())
        task = asyncio.get_running_loop().create_task(
            self._generate(created, self._scripted._reply_to(turn)),
            name="ScriptedRealtimeSession.generate")
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    async def _generate(
        self, created: asyncio.Future[llm.GenerationCreatedEvent] | None, reply: Reply
    ) -> None:
        try:
            if reply.pause is not None:
                await reply.pause()
            if reply.delay:
                await asyncio.sleep(reply.delay)
        except asyncio.CancelledError:
            if created is not None and not created.done():
                created.set_exception(llm.RealtimeError("the reply was interrupted before it began"))
            raise
        if reply.error is not None:
            self._fail(created, reply.error)
            return
        generation = _Generation()
        event = llm.GenerationCreatedEvent(
            message_stream=generation.message_ch, function_stream=generation.function_ch,
            user_initiated=created is not None, response_id=f"resp_{next(_ids)}")
        if created is not None:
            if created.done():  # cancelled by LiveKit meanwhile
                return
            created.set_result(event)
        self.emit("generation_created", event)
        try:
            parts = [self._say, self._call]
            if reply.calls_first:
                parts.reverse()
            await parts[0](generation, reply)
            if reply.pause_between is not None:
                await reply.pause_between()
            await parts[1](generation, reply)
        finally:
            generation.close(self._scripted.modalities)

    def _fail(
        self, created: asyncio.Future[llm.GenerationCreatedEvent] | None, error: Exception
    ) -> None:
        """A provider failure: the pending reply fails with a ``RealtimeError`` and the
        session reports the error (recoverable, as a provider's failed response is)."""
        if created is not None and not created.done():
            created.set_exception(llm.RealtimeError(f"scripted realtime failure: {error}"))
        self.emit("error", llm.RealtimeModelError(
            timestamp=time.time(), label=self._scripted.label, error=error, recoverable=True))

    async def _say(self, generation: _Generation, reply: Reply) -> None:
        if not reply.text:
            return
        message_id = f"item_{next(_ids)}"
        text_ch: utils.aio.Chan[str] = utils.aio.Chan()
        audio_ch: utils.aio.Chan[rtc.AudioFrame] = utils.aio.Chan()
        modalities: asyncio.Future[list[Modality]] = asyncio.get_running_loop().create_future()
        generation.streams += [text_ch, audio_ch]
        generation.modalities.append(modalities)
        generation.message_ch.send_nowait(llm.MessageGeneration(
            message_id=message_id, text_stream=text_ch, audio_stream=audio_ch,
            modalities=modalities))
        modalities.set_result(self._scripted.modalities)
        # the model's own copy of what it said, as far as it got (OpenAI adds the item when
        # the response begins and fills it as it streams)
        message = llm.ChatMessage(id=message_id, role="assistant", content=[""])
        self._chat_ctx.items.append(message)
        sent = ""
        for piece in self._scripted._chunks(reply.text):
            text_ch.send_nowait(piece)
            if "audio" in self._scripted.modalities:
                audio_ch.send_nowait(_silence(len(piece.split())))
            sent += piece
            message.content = [sent]
            await asyncio.sleep(0)  # a chunk at a time: an interruption can land in between
        text_ch.close()
        audio_ch.close()

    async def _call(self, generation: _Generation, reply: Reply) -> None:
        for wanted in reply.calls:
            made = _function_call(wanted)
            self._chat_ctx.items.append(made)
            generation.function_ch.send_nowait(made)
        await asyncio.sleep(0)


def _function_call(wanted: ToolCall) -> llm.FunctionCall:
    n = next(_ids)
    return llm.FunctionCall(id=f"item_{n}", call_id=f"call_{n}", name=wanted.name,
                            arguments=as_json(wanted.arguments))


def _silence(words: int) -> rtc.AudioFrame:
    samples = SAMPLE_RATE * AUDIO_MS_PER_WORD * max(1, words) // 1000
    return rtc.AudioFrame.create(SAMPLE_RATE, 1, samples)
