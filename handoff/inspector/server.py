"""Serving the inspector: on its own (``handoff inspect``) or beside a running call
(``handoff chat --inspect``, ``handoff run --inspect``), in the caller's event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
import threading
from dataclasses import dataclass

from aiohttp import web

from ..events.store import EventStore
from .app import make_app
from .security import check_bind

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_ADDRESS = f"{DEFAULT_HOST}:{DEFAULT_PORT}"


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT``, ``PORT`` or ``HOST`` (IPv6 in brackets) → (host, port)."""
    text = text.strip()
    if text.isdigit():
        return DEFAULT_HOST, _port(text)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, _port(rest.removeprefix(":")) if rest else DEFAULT_PORT
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, DEFAULT_PORT
    return host or DEFAULT_HOST, _port(port)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) < 65536:
        raise ValueError(f"{text!r} is not a port number")
    return int(text)


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class InspectorServer:
    """The inspector app on ``host:port`` (port 0: any free one), started with :meth:`start`."""

    store: EventStore
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    stale_after: float = 15.0
    _runner: web.AppRunner | None = None

    def __post_init__(self) -> None:
        check_bind(self.host, self.token)  # before anything listens

    async def start(self) -> str:
        """Listen, and return the URL to open (with the token, if one is set)."""
        app = make_app(self.store, token=self.token, host=self.host, stale_after=self.stale_after)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # the real one, for port 0
        return self.url

    @property
    def url(self) -> str:
        return self.link("/")

    def link(self, path: str) -> str:
        """The URL of ``path`` to open in a browser (with the token, if one is set)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "[::]") else host
        url = f"http://{shown}:{self.port}{path}"
        return f"{url}?token={self.token}" if self.token else url

    def start_in_thread(self, timeout: float = 30.0) -> str:
        """Serve from a daemon thread with its own event loop (beside a blocking program,
        such as LiveKit's worker CLI); returns the URL once it listens."""
        started: concurrent.futures.Future[str] = concurrent.futures.Future()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            try:
                started.set_result(loop.run_until_complete(self.start()))
            except BaseException as exc:
                started.set_exception(exc)
                return
            loop.run_forever()

        threading.Thread(target=serve, name="handoff-inspector", daemon=True).start()
        return started.result(timeout)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
