"""A call warms the providers of every state when it starts, not at each state's first handoff."""

from __future__ import annotations

import asyncio
from typing import Any

from livekit.agents import tts

from handoff import Context, Flow, RunContext, State, transition
from handoff.offline import EspeakTTS
from handoff.testing import ScriptedLLM, call


class Warmable(ScriptedLLM):
    """A scripted model that records LiveKit's prewarm (a provider's connection set-up)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.warmed = asyncio.Event()
        self.warmings = 0

    async def _prewarm_impl(self) -> None:
        self.warmings += 1
        self.warmed.set()


class CountingTTS(EspeakTTS):
    warmings = 0

    def prewarm(self) -> None:
        self.warmings += 1


class Plain(Context):
    pass


class Front(State[Plain]):
    """Answers."""

    tier = "fast"
    instructions = "You answer."

    @transition(to="Expert")
    async def hard_question(self, ctx: RunContext[Plain]) -> None:
        """Call for a hard question."""


class Expert(State[Plain]):
    """Answers hard questions."""

    tier = "smart"
    instructions = "You answer hard questions."


flow = Flow("warm", context=Plain, initial=Front, states=[Front, Expert], final=[Expert])


async def test_the_next_states_model_is_warm_before_the_first_handoff() -> None:
    fast, smart = Warmable(["Hello."]), Warmable([])
    async with flow.session(llm={"fast": fast, "smart": smart}) as run:
        await asyncio.wait_for(smart.warmed.wait(), 10)  # before any move to Expert
        assert run.state == "Front" and smart.turns == []
        await asyncio.wait_for(fast.warmed.wait(), 10)
        assert smart.warmings == 1


async def test_the_next_states_voice_is_warm_before_the_first_handoff(monkeypatch: Any) -> None:
    voice = CountingTTS()

    def options(cls: type[State[Any]]) -> dict[str, tts.TTS]:
        return {"tts": voice} if cls is Expert else {}

    monkeypatch.setattr(flow, "agent_options", options)
    model = Warmable(["Hello.", call("hard_question"), "Expert here."])
    async with flow.session(llm=model) as run:
        assert voice.warmings == 1 and run.state == "Front"
        await run.session.run(user_input="a hard one")
        assert run.state == "Expert"
