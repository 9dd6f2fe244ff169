"""The inspector a command serves while it runs: ``chat --inspect``, ``run --inspect``
and ``handoff inspect``; a bad address or a port in use is one line and exit 2.
"""

from __future__ import annotations

from typing import Any

import typer

from .root import _fail


def _inspector(address: str, store: Any = None) -> Any:
    """The InspectorServer for ``--inspect HOST:PORT`` over ``store`` (by default the
    configured event store, else the default SQLite file, so the call outlives the
    program); a bad address or an unsafe bind is one line on stderr and exit 2."""
    from ..events import store_or_default
    from ..inspector import InspectorServer, UnsafeBind, parse_address
    from ..settings import InspectorSettings

    try:
        host, port = parse_address(address)
        return InspectorServer(store or store_or_default(), host=host, port=port,
                               token=InspectorSettings.load().token_value)
    except (UnsafeBind, ValueError) as exc:
        raise _fail(f"--inspect {address}: {exc}") from exc


async def _start(server: Any) -> str:
    try:
        url: str = await server.start()
    except OSError as exc:
        raise _fail(f"cannot listen on {server.host}:{server.port}: {exc.strerror or exc}") from exc
    return url


def _inspect_worker(address: str) -> Any:
    """``run --inspect``: the calls (the console's, the job processes') are recorded in the
    configured event store, else in the default SQLite file; this process serves the
    inspector over it from a thread. Returns the running InspectorServer."""
    import os

    from ..events import default_store_path, event_store_from_env, store_or_default

    store = event_store_from_env()
    if store is None:
        store = store_or_default()  # the default file
        path = default_store_path()
        os.environ["HANDOFF_EVENT_STORE"] = f"sqlite://{path}"  # job processes inherit it
        typer.echo(f"events: {path}", err=True)
    inspector = _inspector(address, store)
    try:
        url = inspector.start_in_thread()
    except OSError as exc:
        raise _fail(f"cannot listen on {address}: {exc.strerror or exc}") from exc
    typer.echo(f"inspector: {url}", err=True)
    return inspector
