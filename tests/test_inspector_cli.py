"""``handoff chat --inspect`` and ``handoff run --inspect``: the inspector beside a call."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from examples.callcenter.demo import CALLER
from handoff import cli
from handoff.events import CallSummary, SQLiteEventStore

from .ops_support import REPO, free_port
from .test_worker import QUIET_FLOW

WAIT = 60.0


def fetch(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def poll(what: str, check: Any, proc: subprocess.Popen[str]) -> Any:
    deadline = time.monotonic() + WAIT
    last = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the process exited waiting for {what}"
        try:
            last = check()
        except OSError:
            last = None
        if last:
            return last
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what} (last: {last!r})")


def test_chat_with_inspect_prints_a_url_whose_page_shows_the_call_live() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "handoff.cli", "chat", "examples.callcenter:flow",
         "--script", "examples.callcenter.demo:AGENT_SCRIPT", "--inspect", f"127.0.0.1:{port}"],
        cwd=REPO, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout is not None and proc.stdin is not None
        first = proc.stdout.readline()
        assert first.startswith(f"inspector: http://127.0.0.1:{port}/calls/chat-"), first
        page = first.split(" ", 1)[1].strip()
        call_id = page.rsplit("/", 1)[1]
        api = f"http://127.0.0.1:{port}/api/calls/{call_id}"
        with urllib.request.urlopen(page, timeout=5) as response:
            assert response.status == 200 and b"inspector.js" in response.read()
        call = poll("the call", lambda: fetch(api)["call"], proc)
        assert call["status"] == "live" and call["state"] == "Greeter"
        proc.stdin.write(CALLER[0] + "\n")
        proc.stdin.flush()
        poll("Triage", lambda: fetch(api)["call"]["state"] == "Triage", proc)
        kinds = {e["kind"] for e in fetch(api)["events"]}
        assert {"call_started", "message", "transition", "tool_call"} <= kinds
        proc.stdin.close()
        assert proc.wait(WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_inspect_may_come_without_its_address() -> None:
    assert cli.with_inspect_default(["chat", "m:flow", "--inspect"]) == [
        "chat", "m:flow", "--inspect=127.0.0.1:8765"]
    assert cli.with_inspect_default(["chat", "m:flow", "--inspect", "--script", "m:s"]) == [
        "chat", "m:flow", "--inspect=127.0.0.1:8765", "--script", "m:s"]
    assert cli.with_inspect_default(["chat", "m:flow", "--inspect", "0.0.0.0:9000"]) == [
        "chat", "m:flow", "--inspect", "0.0.0.0:9000"]


def test_chat_refuses_to_inspect_on_a_public_address_without_a_token() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "handoff.cli", "chat", "examples.callcenter:flow",
         "--script", "examples.callcenter.demo:AGENT_SCRIPT", "--inspect", "0.0.0.0:0"],
        cwd=REPO, text=True, capture_output=True, timeout=WAIT, stdin=subprocess.DEVNULL,
        env={k: v for k, v in {**os.environ, "PYTHONPATH": str(REPO)}.items()
             if k != "HANDOFF_INSPECT_TOKEN"})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "HANDOFF_INSPECT_TOKEN" in done.stderr


async def _summary(db: Path, call_id: str) -> CallSummary | None:
    store = SQLiteEventStore(db)
    try:
        return await store.call(call_id)
    finally:
        await store.aclose()


def test_run_with_inspect_shows_the_workers_calls(tmp_path: Path) -> None:
    (tmp_path / "quietflow.py").write_text(QUIET_FLOW)
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LIVEKIT_", "OPENAI_", "HANDOFF_", "VAULT_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), str(tmp_path)]), OPENAI_API_KEY="sk-offline",
               LIVEKIT_URL=f"ws://127.0.0.1:{free_port()}", LIVEKIT_API_KEY="APIkey",
               LIVEKIT_API_SECRET="lk-secret", HANDOFF_IDLE_PROCESSES="1",
               HANDOFF_CHECKPOINT_DIR=str(tmp_path / "checkpoints"))
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "handoff.cli", "run", "quietflow:flow", "start",
             "--health-port", str(free_port()), "--metrics-port", "0",
             "--simulate-call", "smoke-room", "--drain-timeout", "1",
             "--inspect", f"127.0.0.1:{port}"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
    try:
        calls = poll("the simulated call in the inspector", lambda: (
            c := fetch(f"http://127.0.0.1:{port}/api/calls")["calls"]) and c, proc)
        assert calls[0]["flow"] == "quiet" and calls[0]["state"] == "Listen"
        assert calls[0]["status"] == "live"
        assert (tmp_path / "checkpoints" / "events.db").exists()  # next to the checkpoints
        assert f"inspector: http://127.0.0.1:{port}/" in log.read_text()
        proc.send_signal(signal.SIGTERM)  # drain, then the job shuts down: the call ends
        assert proc.wait(WAIT) == 0, log.read_text()[-3000:]
        summary = asyncio.run(_summary(tmp_path / "checkpoints" / "events.db", calls[0]["call_id"]))
        # LiveKit's job process closes the session as user_initiated when the worker stops
        assert summary is not None and summary.ended
        assert summary.end_reason in ("user_initiated", "job_shutdown")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
