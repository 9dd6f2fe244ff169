"""The inspector over HTTP: what it serves, and that it is safe by default.

The page itself, in a real browser, is tests/test_inspector_browser.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from livekit.agents import AgentSession

from examples.callcenter.demo import AGENT_SCRIPT, CALLER
from examples.callcenter.flow import Call
from handoff.events import EventLog, MemoryEventStore, RedisEventStore, SQLiteEventStore
from handoff.inspector import InspectorServer, UnsafeBind, parse_address
from handoff.inspector.security import HEADERS
from handoff.testing import ScriptedLLM

from .ops_support import REPO, says

PII = "ZEBRA-7731"
XSS = "<img src=x onerror=alert(1)>"
TOKEN = "a-test-token-that-is-long-enough"


@pytest.fixture
async def recorded(flow: Any) -> MemoryEventStore:
    """The demo call with a pii value the caller says and an HTML line, recorded in memory."""
    store = MemoryEventStore()
    log = EventLog(store).install(flow)
    caller = list(CALLER)
    caller[0] = f"{caller[0]} {XSS}"
    caller[2] = f"Sure. Account 4411, PIN 1234. My hint is {PII}."
    async with AgentSession[Call]() as session:
        run = await flow.start(session, context=Call(pin_hint=PII),
                               llm=ScriptedLLM(list(AGENT_SCRIPT)), call_id="call-1")
        log.track(run, "call-1")
        for line in caller:
            await session.run(user_input=line)
    assert await log.flush(5)
    return store


@pytest.fixture
async def served(recorded: MemoryEventStore) -> AsyncIterator[str]:
    server = InspectorServer(recorded, port=0)
    url = await server.start()
    yield url.rstrip("/")
    await server.stop()


async def get(url: str, **kwargs: Any) -> tuple[int, str, Any]:
    async with aiohttp.ClientSession() as http, http.get(url, allow_redirects=False,
                                                         **kwargs) as response:
        return response.status, await response.text(), response


async def test_it_serves_the_calls_their_events_the_stream_and_the_diagram(served: str) -> None:
    bodies: list[str] = []
    _, listed, _ = await get(served + "/api/calls")
    diagram = json.loads(listed)["calls"][0]["diagram"]  # the flow's name and version
    assert diagram.startswith("/api/flows/callcenter/")
    for path in ("/", "/calls/call-1", "/static/inspector.js", "/static/inspector.css",
                 "/static/favicon.svg", "/api/calls", "/api/calls/call-1",
                 "/api/calls/call-1/stream", diagram):
        status, body, response = await get(served + path)
        assert status == 200, (path, body)
        for name, value in HEADERS.items():
            assert response.headers[name] == value, (path, name)
        bodies.append(body)
    calls = json.loads(bodies[5])["calls"]
    assert [(c["call_id"], c["status"], c["state"]) for c in calls] == [
        ("call-1", "ended", "Escalation")]
    events = json.loads(bodies[6])["events"]
    assert events[0]["kind"] == "call_started" and events[-1]["kind"] == "call_ended"
    stream = bodies[7]
    assert stream.count("event: step\n") == len(events) and stream.rstrip().endswith("}")
    assert "event: end\n" in stream
    assert "<svg" in bodies[8] and "Greeter" in bodies[8]
    # the page's own script never writes markup from data
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in bodies[2]
    # what the caller said is served as JSON text, and pii never leaves the process
    assert any(XSS in e["data"].get("text", "") for e in events)
    for body in bodies:
        assert PII not in body
    # the PIN the caller said and the model passed to verify_account (a pii argument)
    verify = next(e for e in events if e["kind"] == "tool_call"
                  and e["data"].get("name") == "verify_account")
    assert verify["data"]["arguments"] == {"account_id": "4411", "pin": "[redacted]"}
    # (as a word of some text: the bodies' many numbers and random ids may hold those digits)
    for body in bodies[5:7]:
        assert not says(json.loads(body), "1234")
    for line in bodies[7].splitlines():
        if line.startswith("data: "):
            assert not says(json.loads(line[6:]), "1234")


async def test_a_stream_starts_after_the_step_it_is_given(served: str) -> None:
    _, body, _ = await get(served + "/api/calls/call-1")
    events = json.loads(body)["events"]
    _, stream, _ = await get(served + f"/api/calls/call-1/stream?after={events[-3]['seq']}")
    assert stream.count("event: step\n") == 2


@pytest.mark.parametrize("path", [
    "/api/calls/..%2F..%2Fetc%2Fpasswd", "/api/calls/%3Cscript%3E", "/calls/a%20b",
    "/api/calls/" + "x" * 201, "/api/flows/..%2Fx/1/diagram.svg", "/api/calls/call-1/stream?after=x",
])
async def test_malformed_call_ids_and_names_are_refused(served: str, path: str) -> None:
    status, body, _ = await get(served + path)
    assert status == 400 and "<" not in body


async def test_unknown_calls_and_files_are_not_found(served: str) -> None:
    for path in ("/api/calls/nobody", "/static/secrets.txt", "/static/..%2F__init__.py",
                 "/api/flows/callcenter/no-such-version/diagram.svg"):
        status, _, _ = await get(served + path)
        assert status in (404, 400), path


async def test_it_is_read_only(served: str) -> None:
    async with aiohttp.ClientSession() as http:
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            async with http.request(method, served + "/api/calls/call-1") as response:
                assert response.status == 405


async def test_a_loopback_inspector_only_answers_to_localhost(served: str) -> None:
    status, _, _ = await get(served + "/api/calls", headers={"Host": "attacker.example"})
    assert status == 403
    status, _, _ = await get(served + "/api/calls", headers={"Host": "localhost:1234"})
    assert status == 200


def test_a_non_loopback_bind_without_a_token_is_refused_with_the_fix() -> None:
    with pytest.raises(UnsafeBind, match="--token"):
        InspectorServer(MemoryEventStore(), host="0.0.0.0")
    with pytest.raises(UnsafeBind, match="16 characters"):
        InspectorServer(MemoryEventStore(), host="0.0.0.0", token="short")
    InspectorServer(MemoryEventStore(), host="0.0.0.0", token=TOKEN)
    InspectorServer(MemoryEventStore(), host="::1")


def test_the_command_refuses_a_non_loopback_bind_without_a_token(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "handoff.cli", "inspect", "--host", "0.0.0.0",
         "--store", f"sqlite://{tmp_path}/events.db"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--token" in done.stderr and "0.0.0.0" in done.stderr


def test_bare_inspect_says_in_one_line_when_it_cannot_make_the_default_store(
        tmp_path: Path) -> None:
    """Bare ``handoff inspect`` opens the default file (tests/test_recording.py); where
    its folder cannot be made, one line and exit 2."""
    (tmp_path / "file").write_text("not a folder")
    done = subprocess.run([sys.executable, "-m", "handoff.cli", "inspect"],
                          capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
                               "XDG_STATE_HOME": str(tmp_path / "file")})
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "HANDOFF_EVENT_STORE" in done.stderr and "Traceback" not in done.stderr


async def test_a_token_is_needed_on_a_non_loopback_bind(recorded: MemoryEventStore) -> None:
    server = InspectorServer(recorded, host="0.0.0.0", port=0, token=TOKEN)
    url = await server.start()
    assert url.endswith(f"?token={TOKEN}")
    base = f"http://127.0.0.1:{server.port}"
    try:
        for path in ("/", "/api/calls", "/api/calls/call-1", "/api/calls/call-1/stream",
                     "/static/inspector.js"):
            status, body, _ = await get(base + path)
            assert status == 401 and "call-1" not in body, path
        status, _, _ = await get(base + "/api/calls?token=wrong-token-of-some-length")
        assert status == 401
        status, _, _ = await get(base + "/api/calls", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200
        # the printed URL: a cookie, then the page (a cookie jar that, like a browser, takes
        # cookies from an IP address)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(f"{base}/calls/call-1?token={TOKEN}", allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/calls/call-1"
                assert "HttpOnly" in r.headers["Set-Cookie"] and "SameSite=Strict" in r.headers[
                    "Set-Cookie"]
            async with http.get(f"{base}/api/calls/call-1") as r:
                assert r.status == 200 and PII not in await r.text()
    finally:
        await server.stop()


def test_addresses() -> None:
    assert parse_address("127.0.0.1:9000") == ("127.0.0.1", 9000)
    assert parse_address("9000") == ("127.0.0.1", 9000)
    assert parse_address(":9000") == ("127.0.0.1", 9000)
    assert parse_address("0.0.0.0") == ("0.0.0.0", 8765)
    assert parse_address("[::1]:9000") == ("::1", 9000)
    with pytest.raises(ValueError, match="port"):
        parse_address("host:http")


def test_the_wheel_ships_the_page_its_script_and_style(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "handoff", source / "handoff",
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, capture_output=True,
                   timeout=300)
    (wheel,) = (tmp_path / "dist").glob("livekit_handoff-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    static = REPO / "handoff" / "inspector" / "static"
    for path in static.iterdir():
        assert f"handoff/inspector/static/{path.name}" in names


async def test_a_store_file_is_read_by_a_separate_inspector(flow: Any, tmp_path: Path) -> None:
    """A worker writes SQLite; an inspector with its own store object reads it."""
    writer_store = SQLiteEventStore(tmp_path / "events.db")
    log = EventLog(writer_store).install(flow)
    async with AgentSession[Call]() as session:
        run = await flow.start(session, llm=ScriptedLLM(list(AGENT_SCRIPT)), call_id="sip:42@pbx")
        log.track(run, "sip:42@pbx")
        await session.run(user_input=CALLER[0])
        assert await log.flush(5)
        server = InspectorServer(SQLiteEventStore(tmp_path / "events.db"), port=0)
        url = (await server.start()).rstrip("/")
        try:
            _, body, _ = await get(url + "/api/calls")
            (call,) = json.loads(body)["calls"]
            assert call["call_id"] == "sip:42@pbx" and call["status"] == "live"
            assert call["state"] == "Triage"
        finally:
            await server.stop()
    await log.aclose()


async def test_it_lists_the_calls_of_every_worker_sharing_a_redis_store(
        redis_server: Any) -> None:
    """Two worker processes record a call each to one Redis; one inspector shows both."""
    procs = [subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "events_call.py"), redis_server.url, call_id],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}) for call_id in ("worker-a", "worker-b")]
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0 and '"closed"' in out
    server = InspectorServer(RedisEventStore(redis_server.url), port=0)
    url = (await server.start()).rstrip("/")
    try:
        _, body, _ = await get(url + "/api/calls")
        calls = {c["call_id"]: c for c in json.loads(body)["calls"]}
        assert set(calls) == {"worker-a", "worker-b"}
        assert {c["status"] for c in calls.values()} == {"ended"}
        assert calls["worker-a"]["writer"] != calls["worker-b"]["writer"]  # host:pid of each
        assert calls["worker-a"]["events"] == calls["worker-b"]["events"] > 40
        status, svg, _ = await get(url + calls["worker-a"]["diagram"])
        assert status == 200 and "<svg" in svg
    finally:
        await server.stop()
        await server.store.aclose()
