"""``handoff inspect``: watch live and recent calls in a browser (read-only)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from .root import _fail, app
from .serving import _start


@app.command()
def inspect(
    store: Annotated[str | None, typer.Option(
        help="the event store: sqlite:///path/events.db or redis://host:port/db "
        "(default: HANDOFF_EVENT_STORE, else next to the checkpoints, else the file "
        "--inspect records to: ~/.local/state/handoff/events.db)")] = None,
    host: Annotated[str | None, typer.Option(
        help="address to listen on, default 127.0.0.1 (HANDOFF_INSPECT_HOST); not loopback "
        "needs --token")] = None,
    port: Annotated[int | None, typer.Option(
        help="port to listen on, default 8765 (HANDOFF_INSPECT_PORT; 0: any free port)")] = None,
    token: Annotated[str | None, typer.Option(
        help="required to read the inspector (HANDOFF_INSPECT_TOKEN)")] = None,
    stale_after: Annotated[float | None, typer.Option(
        help="seconds without a heartbeat after which a call's writer counts as stopped, "
        "default 15 (HANDOFF_INSPECT_STALE_AFTER)")] = None,
) -> None:
    """Watch live and recent calls in a browser (read-only).

    The flow with the active state lit, the timeline, the Context at each step, and
    replay of finished calls. Every option may also come from its variable or
    ``[tool.handoff.inspector]``."""
    from ..events import open_event_store, store_or_default
    from ..inspector import InspectorServer, UnsafeBind
    from ..settings import InspectorSettings

    try:
        settings = InspectorSettings.load(host=host, port=port, token=token,
                                          stale_after=stale_after)
        events = open_event_store(store) if store else store_or_default()
        server = InspectorServer(events, host=settings.host, port=settings.port,
                                 token=settings.token_value, stale_after=settings.stale_after)
    except (UnsafeBind, ValueError) as exc:
        raise _fail(str(exc)) from exc
    asyncio.run(_serve(server))


async def _serve(server: Any) -> None:
    typer.echo(f"handoff inspector on {await _start(server)}", err=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()
        await server.store.aclose()
