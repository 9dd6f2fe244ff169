"""Shared helpers for the persistence, resume, telemetry and crash tests.

``RedisServer`` runs a real ``redis-server`` (Debian's package) on a free loopback
port with persistence off; tests start and stop it themselves, never relying on
a system service.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import AgentSession
from livekit.agents.cli.log import JsonFormatter
from livekit.agents.telemetry import set_tracer_provider, tracer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from examples.callcenter.demo import AGENT_SCRIPT
from examples.callcenter.flow import flow as callcenter_flow
from handoff import FlowRun, resume_or_start
from handoff.persistence import Checkpointer
from handoff.telemetry import HandoffMetrics
from handoff.testing import ScriptedLLM

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server subprocess on 127.0.0.1:port (restartable on the same port).

    The port is free when chosen but another process (an xdist worker) may take it before
    redis binds it: a first start then moves to another free port, and the server that
    answers is checked to be this one (its ``process_id``), never another test's.
    """

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (make test installs it: apt redis-server)")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_once = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        for _ in range(5):
            if self._start_on_port():
                self.started_once = True
                return
            if self.started_once:  # a restart must keep its port (clients hold the url)
                pytest.fail(f"redis-server could not restart on port {self.port} (taken)")
            self.port = free_port()
        pytest.fail("redis-server did not start on any of five free ports")

    def _start_on_port(self) -> bool:
        """Start on ``self.port``; False when redis exited (the port was taken)."""
        proc = self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.proc = None
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"INFO server\r\n")
                    answer = sock.recv(65536)
                if f"process_id:{proc.pid}\r\n".encode() in answer:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"redis-server did not answer on port {self.port} within 30 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def metrics() -> HandoffMetrics:
    """Metrics on a fresh registry, so each test reads only its own counts."""
    return HandoffMetrics(CollectorRegistry())


@pytest.fixture
def flow() -> Iterator[Any]:
    """The call-centre flow, with its observers restored after the test."""
    saved = list(callcenter_flow.observers)
    try:
        yield callcenter_flow
    finally:
        callcenter_flow.observers[:] = saved


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Every log record of the process at DEBUG, through LiveKit's JSON formatter (what a
    worker prints), for the test to search."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    names = ("", "livekit.agents", "handoff", "asyncio")
    levels = {name: logging.getLogger(name).level for name in names}
    root.addHandler(handler)
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


@contextmanager
def exported_spans(*, allow_pii: bool) -> Iterator[InMemorySpanExporter]:
    """LiveKit's tracer pointed at an in-memory exporter (its pii filter on unless
    ``allow_pii``), restored afterwards."""
    previous = tracer._tracer_provider
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    set_tracer_provider(provider, allow_pii=allow_pii)
    try:
        yield exporter
    finally:
        tracer.set_provider(previous)
        provider.shutdown()


@asynccontextmanager
async def demo_call(flow: Any, checkpointer: Checkpointer,
                    call_id: str) -> AsyncIterator[tuple[AgentSession[Any], FlowRun[Any]]]:
    """A session of the call-centre demo (its scripted agent side), checkpointed and
    resumed by ``call_id``, once its opening reply is done."""
    async with AgentSession[Any]() as session:
        run = await resume_or_start(flow, session, checkpointer=checkpointer, call_id=call_id,
                                    llm=ScriptedLLM(list(AGENT_SCRIPT)), wait_opening=True)
        yield session, run


def says(value: Any, word: str) -> bool:
    """Whether some string of a JSON value (its keys included) has ``word`` as a word: a
    secret that leaked into text, not the same digits inside a number, a timestamp or a
    random id (which a plain ``in`` on the raw document finds now and then)."""
    if isinstance(value, str):
        return re.search(rf"\b{re.escape(word)}\b", value) is not None
    if isinstance(value, dict):
        return any(says(k, word) or says(v, word) for k, v in value.items())
    if isinstance(value, list):
        return any(says(item, word) for item in value)
    return False
