"""kill -9 in the middle of the call-centre conversation loses nothing.

A worker process runs the call with a SQLite checkpoint store and is SIGKILLed
while the call is in Billing (session open, waiting for the caller). A new
process resumes the same call id and the conversation goes on to the end. The
final Context must equal that of the same conversation run without a crash.

The test waits (polling the SQLite file from this process, a third one on the
same file) until the checkpoint of the last agent line is on disk before it
kills: that makes the test deterministic. In production the window between a
message and its checkpoint is one background write (about a millisecond);
a crash inside it loses at most that last line, never the earlier call.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from handoff.persistence import SQLiteStore

from .ops_support import REPO

WORKER = str(Path(__file__).with_name("crash_worker.py"))


def read_event(proc: subprocess.Popen[str], kind: str, timeout: float = 60) -> dict[str, Any]:
    """Read the worker's JSON lines until one of ``kind`` (all lines are kept on proc.seen)."""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"worker exited before {kind!r}: {err}")
        event = json.loads(line)
        proc.seen.append(event)  # type: ignore[attr-defined]
        if event["kind"] == kind:
            return event
    raise AssertionError(f"no {kind!r} from the worker in {timeout}s")


def start_worker(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, WORKER, *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proc.seen = []  # type: ignore[attr-defined]
    return proc


def uninterrupted_context(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """The final context of the same conversation in a worker process that is not killed."""
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    context: dict[str, Any] = next(e for e in events if e["kind"] == "context")["context"]
    return context


def wait_for_checkpoint(db: Path, call_id: str, last_agent_line: str) -> None:
    store = SQLiteStore(db)
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            cp = asyncio.run(store.load(call_id))
            if cp and cp.state == "Billing" and cp.history and \
                    cp.history[-1] == {"role": "assistant", "text": last_agent_line}:
                return
            time.sleep(0.01)
    finally:
        asyncio.run(store.aclose())
    raise AssertionError("the checkpoint of the last agent line never reached the file")


def test_kill_9_mid_call_then_resume_in_a_new_process(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    call_id = "sip-call-0042"

    reference = start_worker(str(tmp_path / "reference.db"), "reference-call")
    first = start_worker(str(db), call_id, "--stop-in", "Billing")
    try:
        reached = read_event(first, "reached")
        said = [e["text"] for e in first.seen if e["kind"] == "agent"]  # type: ignore[attr-defined]
        wait_for_checkpoint(db, call_id, said[-1])
        first.send_signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
    assert reached["state"] == "Billing"

    second = start_worker(str(db), call_id, "--replies-used", str(reached["replies"]),
                          "--from-line", str(reached["next_line"]))
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    started = events[0]
    assert started == {"kind": "started", "state": "Billing", "resumed": True}
    # the first thing the new worker says answers the caller's next line: nothing repeated
    kinds = [e["kind"] for e in events]
    assert kinds.index("caller") < kinds.index("agent")
    heard_before = set(said)
    said_after = [e["text"] for e in events if e["kind"] == "agent"]
    assert not heard_before & set(said_after)
    assert said_after[0].startswith("I can refund up to 100.00")

    log = next(e for e in events if e["kind"] == "log")["transitions"]
    assert [t[:2] for t in log] == [["Greeter", "Triage"], ["Triage", "Billing"],
                                    ["Billing", "Wrapup"], ["Wrapup", "Escalation"]]
    final = next(e for e in events if e["kind"] == "context")["context"]
    expected = uninterrupted_context(reference)
    assert final == expected
    assert final["caller_name"] == "Dana Reyes" and final["account_id"] == "4411"
    assert final["verified"] is True and final["refund_ticket"] == "R-9001"
