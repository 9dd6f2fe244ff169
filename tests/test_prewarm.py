"""A call warms the providers of every state when it starts, not at each state's first handoff."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from livekit.agents import tts

from handoff import Context, Flow, RunContext, State, transition
from handoff.offline import EspeakTTS
from handoff.testing import ScriptedLLM, call
from handoff.tiers import TierConfig, Tiers


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


async def test_a_missing_key_for_a_later_tier_never_ends_the_call(
    monkeypatch: Any, caplog: Any
) -> None:
    """Expert's tier has no key here. The call starts anyway, the failure is logged once,
    and the handoff into Expert is refused and counted as the reliability page says;
    the call goes on in Front."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    tiers = Tiers({"fast": TierConfig("fast", "m-fast"),
                   "smart": TierConfig("smart", "gpt-4o", api_key_env="HANDOFF_NO_SUCH_KEY")},
                  source="tests", secrets=lambda name: None)
    keyless = Flow("keyless", context=Plain, initial=Front, states=[Front, Expert],
                   final=[Expert], tiers=tiers)
    model = ScriptedLLM(["Hello.", call("hard_question"), "Let me answer that myself.",
                         "Still here."])
    with caplog.at_level(logging.WARNING, logger="handoff"):
        async with keyless.session(llm={"fast": model}) as run:
            warned = [r for r in caplog.records if "smart" in r.getMessage()]
            assert len(warned) == 1 and warned[0].levelno == logging.WARNING
            assert "Expert" in warned[0].getMessage() and warned[0].exc_info is None
            result = await run.session.run(user_input="a hard one")
            out = result.expect.next_event(type="function_call_output").event().item
            assert out.is_error and "failed to start" in out.output
            assert run.state == "Front" and run.refusals[-1].kind == "error"
            assert run.consecutive_failures == 1
            await run.session.run(user_input="are you there?")
            assert run.state == "Front" == run.session.current_agent.id
            assert model.turns[-1].last_user_text == "are you there?"


class Quiet(Front):
    """Answers when asked (does not speak first: no model is reachable here)."""

    speaks_first = False


async def test_a_workers_call_starts_without_a_later_tiers_key(monkeypatch: Any, caplog: Any) -> None:
    """``handoff run``'s job entry point makes the tiers' models when a state needs them:
    the first state's key is in the secrets chain, Expert's is not, and the call starts."""
    from livekit.agents.testing import fake_job_context

    from handoff.secrets import EnvProvider, SecretChain
    from handoff.worker import start_call

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    tiers = Tiers({"fast": TierConfig("fast", "gpt-4o-mini"),
                   "smart": TierConfig("smart", "gpt-4o", api_key_env="HANDOFF_NO_SUCH_KEY")},
                  source="tests")
    quiet = Flow("keyless-worker", context=Plain, initial=Quiet, states=[Quiet, Expert],
                 final=[Expert], tiers=tiers)
    chain = SecretChain([EnvProvider({"OPENAI_API_KEY": "sk-for-fast-only"})])
    with fake_job_context(job_id="job-7") as ctx, caplog.at_level(logging.WARNING, "handoff"):
        ctx.proc.userdata["flow"] = quiet
        run = await start_call(ctx, chain)
        try:
            assert run.state == "Quiet" and run.agent is not None
            assert [r for r in caplog.records if "'smart'" in r.getMessage()]
        finally:
            await run.session.aclose()
