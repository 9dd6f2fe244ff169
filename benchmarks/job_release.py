"""Job release: how long the end of a call holds its job, by what the trace collector does.

A call through a real AgentSession (the README's hello flow, scripted LLM, spans on),
then :func:`handoff.worker.end_call` — what a job runs after its call, before LiveKit
releases it — timed, with tracing configured from ``OTEL_*`` against:

- no tracing;
- a collector that answers (an HTTP server replying 200 to every export);
- a collector that accepts connections and never answers (exporter timeout 10 s);
- a port that refuses connections.

The bound is :data:`handoff.telemetry.otel.FLUSH_BOUND`. The last row (not in --quick)
is what the end of a call waited before the bound: the SDK's ``force_flush`` on the
never-answering collector, which ignores its timeout.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ._common import BenchResult, main, quiet_livekit


class _Answering(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _collector(kind: str) -> Iterator[str | None]:
    """The endpoint of a collector that ``kind`` (none, answers, silent, refused)."""
    if kind == "none":
        yield None
    elif kind == "answers":
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Answering)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
    elif kind == "silent":
        listener = socket.create_server(("127.0.0.1", 0))
        held: list[socket.socket] = []

        def accept() -> None:
            while True:
                try:
                    held.append(listener.accept()[0])
                except OSError:
                    return

        threading.Thread(target=accept, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{listener.getsockname()[1]}"
        finally:
            listener.close()
            for conn in held:
                conn.close()
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        yield f"http://127.0.0.1:{port}"  # nothing listens there


def _provider(endpoint: str | None) -> Any:
    from handoff.telemetry.otel import configure_from_env

    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER"):
        os.environ.pop(name, None)
    os.environ["OTEL_TRACES_SAMPLER"] = "always_on"
    if endpoint is not None:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    return configure_from_env()


async def _release_seconds(endpoint: str | None, sdk_only: bool = False) -> float:
    """A call, then the seconds its end holds the job (``sdk_only``: the SDK's flush)."""
    from examples.readme.hello import flow
    from handoff.telemetry import FlowTelemetry
    from handoff.testing import ScriptedLLM, call
    from handoff.worker import end_call

    provider = _provider(endpoint)
    telemetry = FlowTelemetry().install(flow)
    try:
        llm = ScriptedLLM(["Hi! Who's calling?", call("caller_identified", name="Ann"),
                           "How can I help, Ann?"])
        async with flow.session(llm=llm) as run:
            await run.session.run(user_input="I'm Ann")
        start = time.perf_counter()
        if sdk_only:
            await asyncio.to_thread(provider.force_flush, 2000)
        else:
            await end_call(run, "participant_disconnected")
        return time.perf_counter() - start
    finally:
        flow.observers.remove(telemetry)


def run(quick: bool = False) -> BenchResult:
    from handoff.telemetry.otel import FLUSH_BOUND

    quiet_livekit()
    result = BenchResult("job_release", "Job release with a slow or dead trace collector",
                         quick=quick)
    repeats = 1 if quick else 3
    saved = dict(os.environ)
    os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    os.environ["OTEL_EXPORTER_OTLP_TIMEOUT"] = "10"
    try:
        cases = [("none", "no tracing"), ("answers", "collector answering"),
                 ("silent", "collector accepts, never answers"),
                 ("refused", "collector port refusing connections")]
        for kind, what in cases:
            with _collector(kind) as endpoint:
                worst = max(asyncio.run(_release_seconds(endpoint)) for _ in range(repeats))
            bounded = kind in ("silent", "refused")
            result.add(f"end of a call, {what}", worst, "s",
                       target=f"≤ {FLUSH_BOUND:g} s + 0.1" if bounded else None,
                       met=worst <= FLUSH_BOUND + 0.1 if bounded else None,
                       detail=f"worst of {repeats}")
        if not quick:
            with _collector("silent") as endpoint:
                sdk = asyncio.run(_release_seconds(endpoint, sdk_only=True))
            result.add("SDK force_flush(2000 ms) alone, collector never answers", sdk, "s",
                       detail="what the end of a call waited before the bound")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    result.notes.append("handoff.worker.end_call after a two-turn call with one handoff; "
                        "the checkpoint and event stores are not configured (their own "
                        "bound is STORE_FLUSH_BOUND each)")
    return result


if __name__ == "__main__":
    main(run)
