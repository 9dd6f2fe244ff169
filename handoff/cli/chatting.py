"""``handoff chat``: talk to a flow in the terminal, through a real AgentSession."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

import typer

from ..errors import FlowDefinitionError
from ..flowref import FlowLoadError, load_flow
from .root import _fail, app
from .serving import _inspector, _start


@app.command()
def chat(
    flow_ref: Annotated[str, typer.Argument(metavar="MODULE:ATTRIBUTE", help="The flow")],
    script: Annotated[
        str | None,
        typer.Option(help="MODULE:ATTRIBUTE of a ScriptedLLM reply list or policy, to chat offline"),
    ] = None,
    inspect_at: Annotated[str | None, typer.Option(
        "--inspect", help="serve the inspector while you chat, on [HOST:PORT] (127.0.0.1:8765)")
    ] = None,
) -> None:
    """Talk to a flow in the terminal, through a real AgentSession.

    A text conversation: each line you type is a caller turn; the agent's replies, its tool calls and every
    transition are printed as they happen. End with Ctrl-D.
    """
    inspector = _inspector(inspect_at, None) if inspect_at else None  # a bad bind fails first
    try:
        flow = load_flow(flow_ref)
    except (FlowLoadError, FlowDefinitionError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    llm: Any = None
    if script is not None:
        from ..scripts import load_script

        try:
            llm = load_script(script)
        except (FlowLoadError, FlowDefinitionError) as exc:
            raise _fail(str(exc)) from exc
    else:
        missing = [t for t in {c.tier for c in flow.states.values()} if not flow.tiers.is_configured(t)]
        if missing:
            keys = sorted({flow.tiers.configs[t].api_key_env for t in missing})
            typer.echo(
                f"error: tiers {sorted(missing)} cannot reach a model: set {', '.join(keys)} (or "
                "the tier's api_key_env), point the tier's base_url at an OpenAI-compatible "
                "server, or pass --script MODULE:ATTR to chat with a scripted LLM",
                err=True,
            )
            raise typer.Exit(2)
    from ..events import Recording

    try:  # the configured store (a bad setting is one line), or the inspector's
        recording = Recording(inspector.store) if inspector else Recording.configured()
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(_chat(flow, llm, recording, inspector))


async def _chat(flow: Any, llm: Any, recording: Any, inspector: Any = None) -> None:
    from ..console import ScriptEnded, converse

    if inspector is not None:
        await _start(inspector)
    async with recording, flow.session(llm=llm) as run:
        call_id = recording.track(run, "chat")
        if inspector is not None:
            typer.echo(f"inspector: {inspector.link(f'/calls/{call_id}')}")
        if call_id is not None:
            typer.echo(f"events: call {call_id} in {recording.where}", err=True)
        try:
            await converse(run, typer.echo)
        except ScriptEnded as exc:
            typer.echo(f"error: {exc}", err=True)
            failed = True
        else:
            failed = False
        typer.echo(f"context: {run.context.model_dump_json()}")
    if inspector is not None:
        await inspector.stop()
    if failed:
        raise typer.Exit(1)
