"""A LiveKit server on loopback, as far as a worker's registration goes.

It speaks the agent protocol's first exchange over a WebSocket at ``/agent``: the worker
sends ``WorkerMessage.register``; the server answers ``ServerMessage.register`` with a
worker id once ``allow_registration`` is set (so a test can look at a worker that is
connected but not yet registered), then reads the worker's status updates until the
worker goes. It runs its own event loop in a daemon thread.
"""

from __future__ import annotations

import asyncio
import socket
import threading

from aiohttp import WSMsgType, web
from livekit.protocol import agent


class FakeLiveKit:
    def __init__(self, worker_id: str = "AW_fake_1") -> None:
        self.worker_id = worker_id
        self.allow_registration = threading.Event()
        self.registered = threading.Event()
        self.registrations: list[agent.RegisterWorkerRequest] = []
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"ws://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._runner: web.AppRunner | None = None
        threading.Thread(target=self._serve, daemon=True, name="fake-livekit").start()
        self._started.wait(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.add_routes([web.get("/agent", self._agent)])
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._started.set()
        self._loop.run_forever()

    async def _agent(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        first = await ws.receive()
        msg = agent.WorkerMessage()
        msg.ParseFromString(first.data)
        self.registrations.append(msg.register)
        await asyncio.get_running_loop().run_in_executor(None, self.allow_registration.wait)
        answer = agent.ServerMessage()
        answer.register.worker_id = self.worker_id
        answer.register.server_info.version = "fake"
        await ws.send_bytes(answer.SerializeToString())
        self.registered.set()
        async for incoming in ws:  # status updates, until the worker closes
            if incoming.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break
        return ws

    def close(self) -> None:
        self.allow_registration.set()

        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
