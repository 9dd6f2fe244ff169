"""Keys never destroy a call: a checkpoint a worker cannot open is set aside, never
overwritten, and ``handoff migrate --recover`` puts it back once the key is.

Through real stores (a SQLite file, a real redis-server) and a real AgentSession on the
call-centre flow, whose caller's PIN hint is a pii field sealed at rest.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import AgentSession
from typer.testing import CliRunner

from examples.callcenter.flow import Call
from handoff.cli import app
from handoff.persistence import (
    Checkpoint,
    Checkpointer,
    CheckpointStore,
    MemoryStore,
    RedisStore,
    SQLiteStore,
)
from handoff.persistence.store import aside_key, set_aside_from
from handoff.resume import resume_or_start
from handoff.sealing import KEYS_SECRET, KeyringSealer, new_key_entry
from handoff.telemetry import HandoffMetrics
from handoff.testing import ScriptedLLM

from .ops_support import REPO, RedisServer
from .test_sealing import PIN, _converse, _resumed_pin

FLOW = "examples.callcenter.flow:flow"


def _store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[CheckpointStore, str]:
    if kind == "sqlite":
        path = tmp_path / "checkpoints.db"
        return SQLiteStore(path), f"sqlite:///{path}"
    server: RedisServer = request.getfixturevalue("redis_server")
    return RedisStore(server.url), server.url


async def _fresh_call(flow: Any, store: CheckpointStore, sealer: KeyringSealer | None,
                      metrics: HandoffMetrics, call_id: str, *, ends: bool) -> None:
    """The call dispatched again to a worker that cannot open its checkpoint: it goes on
    fresh, talks, and (``ends``) hangs up, leaving a tombstone."""
    checkpointer = Checkpointer(store, metrics=metrics, sealer=sealer,
                                forget_on=frozenset({"user_initiated"}) if ends else frozenset())
    async with AgentSession[Call]() as session:
        run = await resume_or_start(flow, session, checkpointer=checkpointer, call_id=call_id,
                                    llm=ScriptedLLM(["Hello, who is calling?", "Noted."]),
                                    wait_opening=True)
        assert not run.resuming and run.context.pin_hint is None
        await session.run(user_input="hello again")
        assert await checkpointer.flush(5)
    assert await checkpointer.flush(5)
    await checkpointer.aclose()


async def _migrate(url: str, keys: str, *args: str) -> Any:
    """``handoff migrate FLOW --store URL ARGS`` with ``keys`` in the secrets chain (the
    command runs its own event loop: in a thread)."""
    env = {KEYS_SECRET: keys, "HANDOFF_SECRETS": "env"}
    return await asyncio.to_thread(CliRunner().invoke, app,
                                   ["migrate", FLOW, "--store", url, *args], env=env)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_a_missing_key_sets_the_call_aside_and_recover_brings_it_back(
    flow: Any, metrics: HandoffMetrics, tmp_path: Path, request: pytest.FixtureRequest,
    kind: str,
) -> None:
    k1, k2 = new_key_entry("k1"), new_key_entry("k2")
    store, url = _store(kind, tmp_path, request)
    await _converse(flow, store, KeyringSealer.parse(k1), metrics, "call-7")
    original = await store.load("call-7")
    assert original is not None and str(original.sensitive).startswith("hs1.k1.")

    # a worker whose key set lost k1: the call goes on fresh, the old checkpoint is kept whole
    await _fresh_call(flow, store, KeyringSealer.parse(k2), metrics, "call-7", ends=False)
    assert metrics.value("handoff_resumes_total", flow="callcenter", outcome="failed") == 1
    assert await store.list_calls(aside=True) == [aside_key("call-7", original.seq)]
    assert await store.load(aside_key("call-7", original.seq)) == original
    live = await store.load("call-7")
    assert live is not None and not live.ended and live.seq > original.seq
    assert await store.list_calls() == ["call-7"]  # migrate walks calls, not set-aside keys

    # migrate says what is set aside, and how to get it back
    listed = await _migrate(url, k2)
    assert listed.exit_code == 0, listed.output
    assert ("1 checkpoint(s) set aside by workers that could not open them "
            f"(call-7#unopened-{original.seq}): add --recover once their key is back"
            in listed.output)

    # the key is back, but the call id holds the live fresh call: kept aside, exit 1
    result = await _migrate(url, f"{k2},{k1}", "--recover")
    assert result.exit_code == 1, result.output
    assert "KEPT ASIDE call-7#unopened-" in result.output and "holds a live call" in result.output

    # the fresh call ends (a tombstone); without the key a dry run says it does not open
    await _end(flow, store, KeyringSealer.parse(k2), metrics, "call-7")
    result = await _migrate(url, k2, "--recover", "--dry-run")
    assert result.exit_code == 1
    assert "still does not open: sealed with key 'k1'" in result.output
    assert k1.split(":")[1] not in result.output and k2.split(":")[1] not in result.output

    # with the key: put back, re-sealed with the current key, and the call resumes with its PIN
    result = await _migrate(url, f"{k2},{k1}", "--recover")
    assert result.exit_code == 0, result.output
    assert f"put back call-7#unopened-{original.seq} as call call-7" in result.output
    assert await store.list_calls(aside=True) == []
    back = await store.load("call-7")
    assert back is not None and str(back.sensitive).startswith("hs1.k2.")
    assert back.state == original.state and back.context == original.context
    assert await _resumed_pin(flow, store, KeyringSealer.parse(k2), metrics, "call-7") == PIN
    await store.aclose()


async def _end(flow: Any, store: CheckpointStore, sealer: KeyringSealer,
               metrics: HandoffMetrics, call_id: str) -> None:
    """The live call on ``call_id`` resumes and hangs up: its id then holds a tombstone."""
    checkpointer = Checkpointer(store, metrics=metrics, sealer=sealer,
                                forget_on=frozenset({"user_initiated"}))
    async with AgentSession[Call]() as session:
        run = await resume_or_start(flow, session, checkpointer=checkpointer, call_id=call_id,
                                    llm=ScriptedLLM(["Go on."]))
        assert run.resuming
    assert await checkpointer.flush(5)
    await checkpointer.aclose()
    ended = await store.load(call_id)
    assert ended is not None and ended.ended


GOOD = {"format": 1, "call_id": "odd", "flow": {"name": "callcenter", "version": "1"},
        "state": "Greeter", "seq": 5, "saved_at": 1.0, "context": {}, "sensitive": {},
        "return_stack": [], "log": [], "history": []}


@pytest.mark.parametrize("defect", ["corrupt", "unknown format", "another flow", "no keys"])
async def test_a_checkpoint_that_cannot_be_opened_is_never_overwritten(
    flow: Any, metrics: HandoffMetrics, tmp_path: Path, defect: str
) -> None:
    store = SQLiteStore(tmp_path / "checkpoints.db")
    await store.save(Checkpoint.from_json(json.dumps(GOOD)))
    text = {"corrupt": '{"format": 1, "call_id": "odd", "st',
            "unknown format": json.dumps({**GOOD, "format": 2}),
            "another flow": json.dumps({**GOOD, "flow": {"name": "billing", "version": "1"}}),
            "no keys": json.dumps({**GOOD, "sensitive": "hs1.k1.AAAA"})}[defect]
    with store._lock:
        store._connection().execute("UPDATE handoff_checkpoints SET data = ?", (text,))
    await _fresh_call(flow, store, None, metrics, "odd", ends=False)
    key = aside_key("odd", 5)
    assert await store.list_calls(aside=True) == [key] and set_aside_from(key) == "odd"
    with store._lock:
        kept = store._connection().execute(
            "SELECT data FROM handoff_checkpoints WHERE call_id = ?", (key,)).fetchone()[0]
    assert kept == text  # moved as stored, byte for byte
    fresh = await store.load("odd")
    assert fresh is not None and fresh.flow == "callcenter" and fresh.seq > 5
    await store.aclose()


class _NoAside(MemoryStore):
    async def set_aside(self, call_id: str, seq: int | None = None) -> str | None:
        raise ConnectionError("the store is down")


async def test_when_it_cannot_be_set_aside_the_call_goes_on_under_a_new_id(
    flow: Any, metrics: HandoffMetrics
) -> None:
    store = _NoAside()
    await store.save(Checkpoint.from_json(json.dumps({**GOOD, "sensitive": "hs1.k1.AAAA"})))
    await _fresh_call(flow, store, None, metrics, "odd", ends=False)
    calls = await store.list_calls()
    assert "odd" in calls and len(calls) == 2
    assert (await store.load("odd")) == Checkpoint.from_json(  # untouched
        json.dumps({**GOOD, "sensitive": "hs1.k1.AAAA"}))
    (fresh,) = [c for c in calls if c != "odd"]
    assert fresh.startswith("odd#fresh-")


def test_a_malformed_key_set_is_one_line_and_exit_2_naming_the_key(tmp_path: Path) -> None:
    short = base64.b64encode(os.urandom(5)).decode()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HANDOFF_SECRETS": "env",
           "LIVEKIT_URL": "ws://127.0.0.1:9", "LIVEKIT_API_KEY": "devkey",
           "LIVEKIT_API_SECRET": "secret", "OPENAI_API_KEY": "sk-test",
           "HANDOFF_CHECKPOINT_DIR": str(tmp_path), "HANDOFF_METRICS_PORT": "0",
           KEYS_SECRET: f"{new_key_entry('k2')},k1:{short}"}
    proc = subprocess.run([sys.executable, "-m", "handoff.cli", "run", FLOW, "start"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert lines == [f"error: {KEYS_SECRET}: key 'k1' is 5 bytes; AES-256 needs 32"], proc.stderr
    assert short not in proc.stderr + proc.stdout
    # migrate reads the same chain: the same line
    result = CliRunner().invoke(app, ["migrate", FLOW, "--store", f"sqlite:///{tmp_path}/x.db"],
                                env={KEYS_SECRET: f"k1:{short}", "HANDOFF_SECRETS": "env"})
    assert result.exit_code == 2 and "key 'k1' is 5 bytes" in result.output
    assert short not in result.output
