import asyncio

from handoff import Context, Flow, RunContext, State, transition
from handoff.testing import ScriptedLLM, call


class Call(Context):
    caller_name: str | None = None


class Greeter(State[Call]):
    """Greets the caller and asks their name."""
    instructions = "Greet the caller and ask their name."

    @transition(to="Helper")
    async def caller_identified(self, ctx: RunContext[Call], name: str) -> None:
        """Call once the caller has told you their name."""
        ctx.userdata.caller_name = name


class Helper(State[Call]):
    """Helps the caller."""
    tier = "smart"
    instructions = "Help the caller with their question."


flow = Flow("hello", context=Call, initial=Greeter, states=[Greeter, Helper], final=[Helper])


async def main() -> None:
    llm = ScriptedLLM(["Hi! Who's calling?", call("caller_identified", name="Ann"), "How can I help, Ann?"])
    async with flow.session(llm=llm) as run:          # a real LiveKit AgentSession, text mode
        await run.session.run(user_input="I'm Ann")   # the LLM calls caller_identified → handoff
        print(run.state, run.context.caller_name)     # Helper Ann


if __name__ == "__main__":
    asyncio.run(main())
