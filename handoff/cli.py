"""The ``handoff`` command: talk to a flow, check it, draw it, run it as a worker."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Annotated, Any

import typer

from .loading import FlowLoadError, load_flow

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Multi-agent voice AI on LiveKit Agents, as a state machine.")


@app.callback()
def _root() -> None:
    """handoff: multi-agent voice AI on LiveKit Agents, as a state machine."""


@app.command()
def chat(
    flow_ref: Annotated[str, typer.Argument(help="The flow, as MODULE:ATTRIBUTE")],
    script: Annotated[
        str | None,
        typer.Option(help="MODULE:ATTRIBUTE of a ScriptedLLM reply list or policy, to chat offline"),
    ] = None,
) -> None:
    """A text conversation with the flow in the terminal, through a real AgentSession.

    Each line you type is a caller turn; the agent's replies, its tool calls and every
    transition are printed as they happen. End with Ctrl-D.
    """
    try:
        flow = load_flow(flow_ref)
    except FlowLoadError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    llm: Any = None
    if script is not None:
        from .testing import ScriptedLLM

        module, _, attr = script.partition(":")
        replies = getattr(__import__(module, fromlist=[attr]), attr)
        llm = ScriptedLLM(replies)
    else:
        missing = [t for t in {c.tier for c in flow.states.values()} if not flow.tiers.is_configured(t)]
        if missing:
            typer.echo(
                f"error: tiers {sorted(missing)} cannot reach a model: set OPENAI_API_KEY (or the "
                "tier's api_key_env), point the tier's base_url at an OpenAI-compatible server, "
                "or pass --script MODULE:ATTR to chat with a scripted LLM",
                err=True,
            )
            raise typer.Exit(2)
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(_chat(flow, llm))


async def _chat(flow: Any, llm: Any) -> None:
    from .transcript import TranscriptPrinter

    async with flow.session(llm=llm) as run:
        printer = TranscriptPrinter(run)
        typer.echo(f"[{run.state}]")
        typer.echo("\n".join(printer.lines(run.opening)))
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, _read_line)
            if line is None:
                break
            if not line.strip():
                continue
            result = await run.session.run(user_input=line)
            typer.echo("\n".join(printer.lines(result)))
            typer.echo(f"[{run.state}]")
        typer.echo(f"context: {run.context.model_dump_json()}")


def _read_line() -> str | None:
    sys.stdout.write("caller> ")
    sys.stdout.flush()
    line = sys.stdin.readline()
    return None if line == "" else line.rstrip("\n")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    flow_ref: Annotated[str, typer.Argument(help="The flow, as MODULE:ATTRIBUTE")],
    mode: Annotated[str, typer.Argument(help="console | dev | start")],
    max_jobs: Annotated[int | None, typer.Option(help="calls per worker (HANDOFF_MAX_JOBS)")] = None,
    drain_timeout: Annotated[
        int | None, typer.Option(help="seconds calls get after SIGTERM (HANDOFF_DRAIN_TIMEOUT)")
    ] = None,
    health_port: Annotated[int | None, typer.Option(help="health endpoint port")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus /metrics port")] = None,
    simulate_call: Annotated[
        str | None, typer.Option(help="start one simulated call (no audio) in this room name")
    ] = None,
) -> None:
    """Run the flow as a LiveKit voice worker (one job per room).

    Secrets (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET, model keys) come from the
    secrets chain: environment, HANDOFF_SECRETS_DIR files, Vault. Further options go to
    LiveKit's own command (e.g. ``--log-level``, ``console --text``).
    """
    from .secrets import SecretError
    from .worker import MODES, WorkerSettings, run_worker

    if mode not in MODES:
        typer.echo(f"error: mode must be one of {', '.join(MODES)}, not {mode!r}", err=True)
        raise typer.Exit(2)
    try:
        settings = WorkerSettings.from_env(
            flow_ref, max_jobs=max_jobs, drain_timeout=drain_timeout,
            health_port=health_port, metrics_port=metrics_port)
        run_worker(settings, mode, ctx.args, simulate_call=simulate_call)
    except (FlowLoadError, SecretError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def main() -> None:
    app()


if __name__ == "__main__":
    main()
