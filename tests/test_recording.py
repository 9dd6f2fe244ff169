"""The inspector everywhere: every way of running a call can record it to the event store.

``handoff chat``, ``handoff run … console`` (text), the demos and the test driver record to
``HANDOFF_EVENT_STORE`` when it is set; ``chat --inspect`` and ``run console --inspect``
record to the default SQLite file (``$XDG_STATE_HOME/handoff/events.db``) when no store is
configured, print where, and bare ``handoff inspect`` serves that file after they exited.
Each program runs as a user runs it, in its own process, with the scripted LLM.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.callcenter.demo import CALLER
from examples.readme.hello import flow as hello_flow
from handoff.events import (
    Event,
    MemoryEventStore,
    Recording,
    SQLiteEventStore,
    default_store_path,
    store_or_default,
)
from handoff.testing import FlowDriver, call

from .ops_support import REPO, free_port
from .test_inspector_cli import fetch, poll

WAIT = 60.0
CHAT = ["chat", "examples.callcenter:flow", "--script", "examples.callcenter.demo:AGENT_SCRIPT"]
CONSOLE = ["run", "examples.callcenter:flow", "console", "--script",
           "examples.callcenter.demo:AGENT_SCRIPT"]
MOVES = ["Greeter->Triage", "Triage->Billing", "Billing->Wrapup", "Wrapup->Escalation"]


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a user's shell: no handoff settings, its own state directory."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HANDOFF_", "LIVEKIT_", "OPENAI_", "XDG_"))}
    env.update(PYTHONPATH=str(REPO), XDG_STATE_HOME=str(tmp_path / "state"), **extra)
    return env


def handoff(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "handoff.cli", *args], cwd=REPO, env=env,
                          input=stdin, capture_output=True, text=True, timeout=WAIT * 2)


async def read_store(db: Path) -> dict[str, list[Event]]:
    """Every call in the SQLite file ``db`` with its events."""
    store = SQLiteEventStore(db)
    try:
        return {c.call_id: await store.events(c.call_id) for c in await store.calls()}
    finally:
        await store.aclose()


def the_call(db: Path, prefix: str) -> list[Event]:
    calls = asyncio.run(read_store(db))
    assert len(calls) == 1, calls.keys()
    [(call_id, events)] = calls.items()
    assert call_id.startswith(f"{prefix}-"), call_id
    return events


def moves(events: list[Event]) -> list[str]:
    return [f"{e.data['source']}->{e.data['target']}" for e in events if e.kind == "transition"]


def assert_whole_demo_call(events: list[Event]) -> None:
    assert events[0].kind == "call_started" and events[-1].kind == "call_ended"
    assert moves(events) == MOVES
    said = [e.data["text"] for e in events if e.kind == "message" and e.data["role"] == "user"]
    # the PIN is a pii argument of verify_account: once said, it is redacted in stored text
    assert said == [line.replace("PIN 1234", "PIN [redacted]") for line in CALLER]


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- in process ---------------------------------------------------------------------------
def test_the_default_store_is_in_the_users_state_directory(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    assert default_store_path(env) == tmp_path / "state" / "handoff" / "events.db"
    assert default_store_path({"HOME": "/nowhere"}).parts[-3:] == ("state", "handoff", "events.db")
    store = store_or_default(env)
    assert isinstance(store, SQLiteEventStore) and store.path == default_store_path(env)
    configured = store_or_default({**env, "HANDOFF_EVENT_STORE": f"sqlite://{tmp_path}/x.db"})
    assert isinstance(configured, SQLiteEventStore) and configured.path == tmp_path / "x.db"


async def test_a_recording_without_a_store_records_nothing_and_says_so() -> None:
    async with Recording(None) as recording, FlowDriver(hello_flow, recording=recording) as d:
        await d.turn(call("caller_identified", name="Ann"))
        assert d.call_id is None and recording.where is None and recording.log is None


async def test_the_driver_records_its_call_when_given_a_recording(tmp_path: Path) -> None:
    store = MemoryEventStore()
    async with Recording(store) as recording, FlowDriver(hello_flow, recording=recording) as d:
        await d.turn(call("caller_identified", name="Ann"))
        assert d.call_id is not None and d.call_id.startswith("driver-")
    events = await store.events(d.call_id)  # written when the recording ended
    assert events[0].kind == "call_started" and events[-1].kind == "call_ended"
    assert moves(events) == ["Greeter->Helper"]
    summary = await store.call(d.call_id)
    assert summary is not None and summary.ended
    assert recording.log not in hello_flow.observers  # the module's flow is left as it was


# -- as a user runs them ------------------------------------------------------------------
def test_chat_records_to_the_configured_store(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    done = handoff(*CHAT, env=clean_env(tmp_path, HANDOFF_EVENT_STORE=f"sqlite://{db}"),
                   stdin="\n".join(CALLER) + "\n")
    assert done.returncode == 0, done.stderr
    assert f"in {db}" in done.stderr
    assert_whole_demo_call(the_call(db, "chat"))
    assert not (tmp_path / "state").exists()  # only --inspect falls back to the default file


def test_chat_without_a_store_records_nothing(tmp_path: Path) -> None:
    done = handoff(*CHAT, env=clean_env(tmp_path), stdin=CALLER[0] + "\n")
    assert done.returncode == 0, done.stderr
    assert "events:" not in done.stderr and not (tmp_path / "state").exists()


def test_console_records_to_the_configured_store(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    done = handoff(*CONSOLE, env=clean_env(tmp_path, HANDOFF_EVENT_STORE=f"sqlite://{db}"),
                   stdin="\n".join(CALLER) + "\n")
    assert done.returncode == 0, done.stderr
    assert_whole_demo_call(the_call(db, "console"))


def test_a_second_console_is_a_second_call(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    env = clean_env(tmp_path, HANDOFF_EVENT_STORE=f"sqlite://{db}")
    for _ in range(2):
        assert handoff(*CONSOLE, env=env, stdin=CALLER[0] + "\n").returncode == 0
    calls = asyncio.run(read_store(db))
    assert len(calls) == 2
    for events in calls.values():
        assert [e.kind for e in events].count("call_started") == 1
        assert moves(events) == ["Greeter->Triage"]


def test_a_demo_records_when_a_store_is_configured(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    done = subprocess.run([sys.executable, "-m", "examples.bank.demo"], cwd=REPO, text=True,
                          capture_output=True, timeout=WAIT * 2,
                          env=clean_env(tmp_path, HANDOFF_EVENT_STORE=f"sqlite://{db}"))
    assert done.returncode == 0, done.stderr
    assert f"in {db}" in done.stdout
    events = the_call(db, "bank")
    assert events[0].kind == "call_started" and events[-1].kind == "call_ended"
    assert moves(events)


def test_console_with_inspect_shows_its_call_then_bare_inspect_replays_it(
        tmp_path: Path, procs: list[subprocess.Popen[str]]) -> None:
    """The issue's case: the console's own call was not in the inspector it served."""
    env = clean_env(tmp_path)
    port = free_port()
    console = subprocess.Popen(
        [sys.executable, "-m", "handoff.cli", *CONSOLE, "--inspect", f"127.0.0.1:{port}"],
        cwd=REPO, env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    procs.append(console)
    assert console.stdin is not None and console.stderr is not None
    printed: list[str] = []
    while not printed or "/calls/" not in printed[-1]:  # up to the link to the call
        printed.append(console.stderr.readline())
        assert printed[-1], printed
    default = tmp_path / "state" / "handoff" / "events.db"
    assert f"events: {default}\n" in printed, printed
    link = printed[-1]
    assert link.startswith(f"inspector: http://127.0.0.1:{port}/calls/"), printed
    call_id = link.strip().rsplit("/", 1)[1]
    assert call_id.startswith("console-")
    api = f"http://127.0.0.1:{port}/api/calls"
    listed = poll("the console's call", lambda: fetch(api)["calls"], console)
    assert [c["call_id"] for c in listed] == [call_id] and listed[0]["status"] == "live"
    console.stdin.write(CALLER[0] + "\n")
    console.stdin.flush()
    poll("Triage", lambda: fetch(f"{api}/{call_id}")["call"]["state"] == "Triage", console)
    console.stdin.close()
    assert console.wait(WAIT) == 0

    port = free_port()  # after the console exited: bare `handoff inspect` opens the same file
    inspect = subprocess.Popen(
        [sys.executable, "-m", "handoff.cli", "inspect", "--port", str(port)], cwd=REPO, env=env,
        text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    procs.append(inspect)
    assert inspect.stderr is not None and "inspector on" in inspect.stderr.readline()
    replayed = fetch(f"http://127.0.0.1:{port}/api/calls/{call_id}")
    assert replayed["call"]["status"] == "ended"
    assert moves([Event.from_dict(e) for e in replayed["events"]]) == ["Greeter->Triage"]


def test_chat_with_inspect_keeps_its_call_in_the_default_file(tmp_path: Path) -> None:
    done = handoff(*CHAT, "--inspect", "127.0.0.1:0", env=clean_env(tmp_path),
                   stdin="\n".join(CALLER[:2]) + "\n")
    assert done.returncode == 0, done.stderr
    default = tmp_path / "state" / "handoff" / "events.db"
    assert f"in {default}" in done.stderr
    events = the_call(default, "chat")
    assert moves(events) == ["Greeter->Triage"] and events[-1].kind == "call_ended"
