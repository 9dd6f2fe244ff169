"""Honest health endpoints for a worker: liveness apart from readiness.

LiveKit's own endpoint answers ``OK`` from start-up until the worker gives up
connecting, so a readiness probe on it passes for a worker that never registered.
:class:`WorkerHealth` serves, on the worker's health port:

- ``GET /live`` (and ``GET /``): 200 while the worker's event loop answers and the
  worker has not given up on LiveKit — the liveness probe;
- ``GET /ready``: 200 only while the worker is registered with LiveKit and not
  draining — the readiness probe (503 with the reason otherwise);
- ``GET /worker``: the same facts as JSON (``registered``, ``active_jobs``, ``load``…).

It runs on the worker's own event loop (an aiohttp server started when the
``AgentServer`` starts), so a blocked loop fails both probes.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ._livekit import worker_connecting, worker_connection_failed

if TYPE_CHECKING:
    from livekit.agents import AgentServer

logger = logging.getLogger("handoff.health")


class WorkerHealth:
    """Readiness and liveness of one ``AgentServer``, served over HTTP on ``port``."""

    def __init__(self, server: AgentServer, port: int, host: str = "0.0.0.0",
                 *, load: Any = None) -> None:
        self.server = server
        self.host = host
        self.port = port
        self.load = load  # ActiveJobsLoad: its last value goes into /worker
        self.registered_id: str | None = None
        self._runner: web.AppRunner | None = None
        server.on("worker_registered", self._on_registered)
        server.on("worker_started", self._on_started)

    # -- what the probes say -----------------------------------------------------------
    def ready(self) -> tuple[bool, str]:
        """(ready, reason): registered with LiveKit now, and taking calls."""
        if worker_connection_failed(self.server):
            return False, "failed to connect to livekit"
        if self.registered_id is None:
            return False, "not registered with livekit yet"
        if worker_connecting(self.server):
            return False, "reconnecting to livekit"
        if self.server.draining:
            return False, "draining"
        return True, "OK"

    def live(self) -> tuple[bool, str]:
        if worker_connection_failed(self.server):
            return False, "failed to connect to livekit"
        return True, "OK"

    def info(self) -> dict[str, Any]:
        ready, reason = self.ready()
        return {
            "registered": self.registered_id is not None and not worker_connecting(self.server),
            "worker_id": self.registered_id,
            "ready": ready,
            "reason": reason,
            "draining": self.server.draining,
            "active_jobs": len(self.server.active_jobs),
            "worker_load": getattr(self.load, "last", 0.0),
        }

    # -- wiring --------------------------------------------------------------------------
    def _on_registered(self, worker_id: str, _server_info: Any) -> None:
        self.registered_id = worker_id

    def _on_started(self) -> None:
        import asyncio

        task = asyncio.get_event_loop().create_task(self.start())
        task.add_done_callback(_log_failure)
        self._start_task = task

    async def start(self) -> None:
        app = web.Application()
        app.add_routes([web.get("/", self._live), web.get("/live", self._live),
                        web.get("/ready", self._ready), web.get("/worker", self._worker)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        logger.info("health endpoints on %s:%d (/live, /ready, /worker)", self.host, self.port)

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _live(self, _request: web.Request) -> web.Response:
        ok, reason = self.live()
        return web.Response(status=200 if ok else 503, text=reason)

    async def _ready(self, _request: web.Request) -> web.Response:
        ok, reason = self.ready()
        return web.Response(status=200 if ok else 503, text=reason)

    async def _worker(self, _request: web.Request) -> web.Response:
        return web.Response(text=json.dumps(self.info()), content_type="application/json")


def _log_failure(task: Any) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("health endpoints did not start: %s", task.exception())
