"""Encryption at rest: AES-GCM sealing of checkpoints' pii section, keys from the secrets chain.

The end-to-end tests run the call-centre conversation through a real AgentSession with
a pii value (the PIN hint), checkpointed to a real SQLite file and a real redis-server,
then read the stores' raw bytes — every SQLite file (database, WAL, shared memory) and
every Redis value, whatever its type — and find the value nowhere; the call still
resumes with it. Rotation: checkpoints sealed with an old key resume under a keyring
that lists a new key first, and are re-sealed with the new key on their next write.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
import redis
from livekit.agents import AgentSession

from examples.callcenter.flow import Call
from handoff.persistence import Checkpointer, CheckpointStore, MemoryStore, RedisStore, SQLiteStore
from handoff.resume import resume_or_start
from handoff.sealing import KEYS_SECRET, KeyringSealer, SealError, new_key_entry
from handoff.secrets import EnvProvider, FileProvider, SecretChain
from handoff.telemetry import HandoffMetrics
from handoff.testing import ScriptedLLM, call

from .ops_support import RedisServer

PIN = "ZEBRA-7731"


def _keyring(*ids: str) -> tuple[KeyringSealer, str]:
    text = ",".join(new_key_entry(i) for i in ids)
    return KeyringSealer.parse(text), text


# -- the sealer ---------------------------------------------------------------------------
def test_seal_round_trip_hides_the_data_and_names_its_key() -> None:
    sealer, _ = _keyring("k1")
    token = sealer.seal(b'{"pin_hint": "ZEBRA-7731"}')
    assert token.startswith("hs1.k1.") and PIN not in token
    assert sealer.unseal(token) == b'{"pin_hint": "ZEBRA-7731"}'
    assert sealer.seal(b"same") != sealer.seal(b"same")  # a fresh nonce each time
    assert "k1" in repr(sealer) and base64.b64encode(b"x").decode() not in repr(sealer)


def test_rotation_reads_old_keys_and_writes_with_the_new_one() -> None:
    old, old_text = _keyring("k1")
    token = old.seal(b"secret")
    new_entry = new_key_entry("k2")
    rotated = KeyringSealer.parse(f"{new_entry},{old_text}")
    assert rotated.current == "k2" and rotated.unseal(token) == b"secret"
    assert rotated.seal(b"secret").startswith("hs1.k2.")
    dropped = KeyringSealer.parse(new_entry)  # the old key removed too early
    with pytest.raises(SealError, match="sealed with key 'k1', which is not in HANDOFF_SEAL_KEYS"):
        dropped.unseal(token)


def test_a_tampered_or_relabelled_token_does_not_open() -> None:
    sealer, _ = _keyring("k1", "k2")
    token = sealer.seal(b"secret")
    body = token.split(".", 2)[2]
    raw = bytearray(base64.urlsafe_b64decode(body))
    raw[20] ^= 0x01  # one bit of the ciphertext
    flipped = base64.urlsafe_b64encode(bytes(raw)).decode()
    with pytest.raises(SealError, match="does not open"):
        sealer.unseal(f"hs1.k1.{flipped}")
    with pytest.raises(SealError, match="does not open"):  # the key id is authenticated
        sealer.unseal(f"hs1.k2.{body}")
    with pytest.raises(SealError, match="not a sealed token"):
        sealer.unseal("plain text")


@pytest.mark.parametrize(("text", "message"), [
    ("", "holds no key"),
    ("k1", "each entry is ID:BASE64KEY"),
    ("k1:not base64!", "key 'k1' is not base64"),
    (f"k1:{base64.b64encode(b'short').decode()}", "5 bytes; AES-256 needs 32"),
    (f"{new_key_entry('k1')},{new_key_entry('k1')}", "listed twice"),
], ids=["empty", "no-key", "not-base64", "short-key", "listed-twice"])  # (the keys are random:
# named ids keep the test ids the same in every process, as pytest-xdist requires)
def test_a_malformed_keyring_is_refused_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(SealError, match=message):
        KeyringSealer.parse(text)


def test_keys_come_from_the_secrets_chain(tmp_path: Path) -> None:
    entry = new_key_entry("k7")
    (tmp_path / KEYS_SECRET).write_text(entry + "\n")  # a mounted Kubernetes Secret
    sealer = KeyringSealer.from_secrets(SecretChain([EnvProvider({}), FileProvider(tmp_path)]))
    assert sealer is not None and sealer.key_ids == ["k7"]
    assert KeyringSealer.from_secrets(SecretChain([EnvProvider({})])) is None


# -- at rest, in real stores ---------------------------------------------------------------
async def _converse(flow: Any, store: CheckpointStore, sealer: KeyringSealer,
                    metrics: HandoffMetrics, call_id: str) -> None:
    """The start of the call-centre conversation, with the caller's PIN hint in the
    Context and said aloud, checkpointed with ``sealer``."""
    checkpointer = Checkpointer(store, metrics=metrics, sealer=sealer)
    script = ScriptedLLM(["Hello, who is calling?",
                          call("caller_identified", name="Dana", topic=f"my hint is {PIN}"),
                          "Thanks Dana."])
    async with AgentSession[Call]() as session:
        await resume_or_start(flow, session, checkpointer=checkpointer, call_id=call_id,
                              context=Call(pin_hint=PIN), llm=script, wait_opening=True)
        await session.run(user_input=f"I'm Dana, my hint is {PIN}")
        assert await checkpointer.flush(5)
    await checkpointer.aclose()


async def _resumed_pin(flow: Any, store: CheckpointStore, sealer: KeyringSealer,
                       metrics: HandoffMetrics, call_id: str) -> str | None:
    checkpointer = Checkpointer(store, metrics=metrics, sealer=sealer)
    async with AgentSession[Call]() as session:
        run = await resume_or_start(flow, session, checkpointer=checkpointer, call_id=call_id,
                                    llm=ScriptedLLM(["Go on."]))
        assert run.resuming
        pin = run.context.pin_hint
        assert await checkpointer.flush(5)
    await checkpointer.aclose()
    return pin


def _sqlite_bytes(folder: Path) -> bytes:
    files = sorted(folder.glob("checkpoints.db*"))  # the database, its WAL and shared memory
    assert files
    return b"".join(path.read_bytes() for path in files)


def _redis_bytes(url: str) -> bytes:
    client = redis.Redis.from_url(url)
    out = b""
    for key in client.scan_iter():
        kind = client.type(key)
        if kind == b"string":
            out += client.get(key) or b""
        elif kind == b"hash":
            out += b"".join(k + v for k, v in client.hgetall(key).items())
        elif kind == b"zset":
            out += b"".join(m for m, _ in client.zrange(key, 0, -1, withscores=True))
        elif kind == b"list":
            out += b"".join(client.lrange(key, 0, -1))
        elif kind == b"set":
            out += b"".join(client.smembers(key))
        elif kind == b"stream":
            out += b"".join(k + v for _, fields in client.xrange(key) for k, v in fields.items())
        else:
            raise AssertionError(f"a Redis value of type {kind!r}: read it too")
    client.close()
    assert out
    return out


async def test_the_raw_sqlite_file_never_holds_a_pii_value(
    flow: Any, metrics: HandoffMetrics, tmp_path: Path
) -> None:
    sealer, _ = _keyring("k1")
    store = SQLiteStore(tmp_path / "checkpoints.db")
    await _converse(flow, store, sealer, metrics, "sqlite-call")
    raw = _sqlite_bytes(tmp_path)
    assert PIN.encode() not in raw and b"hs1.k1." in raw
    assert b"Dana" in raw  # the plain part is there: the search reads the real bytes
    assert await _resumed_pin(flow, store, sealer, metrics, "sqlite-call") == PIN
    await store.aclose()
    assert PIN.encode() not in _sqlite_bytes(tmp_path)


async def test_raw_redis_values_never_hold_a_pii_value(
    flow: Any, metrics: HandoffMetrics, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path)
    server.start()
    try:
        sealer, _ = _keyring("k1")
        store = RedisStore(server.url)
        await _converse(flow, store, sealer, metrics, "redis-call")
        raw = _redis_bytes(server.url)
        assert PIN.encode() not in raw and b"hs1.k1." in raw and b"Dana" in raw
        assert await _resumed_pin(flow, store, sealer, metrics, "redis-call") == PIN
        await store.aclose()
    finally:
        server.stop()


async def test_a_rotated_keyring_resumes_old_checkpoints_and_reseals_them(
    flow: Any, metrics: HandoffMetrics, tmp_path: Path
) -> None:
    old, old_text = _keyring("k1")
    store = SQLiteStore(tmp_path / "checkpoints.db")
    await _converse(flow, store, old, metrics, "rotating-call")
    saved = await store.load("rotating-call")
    assert saved is not None and str(saved.sensitive).startswith("hs1.k1.")
    rotated = KeyringSealer.parse(f"{new_key_entry('k2')},{old_text}")
    assert await _resumed_pin(flow, store, rotated, metrics, "rotating-call") == PIN
    resealed = await store.load("rotating-call")
    assert resealed is not None and str(resealed.sensitive).startswith("hs1.k2.")
    assert resealed.context_data(rotated)["pin_hint"] == PIN
    # every key that sealed it dropped: the call cannot resume, starts over, is counted
    checkpointer = Checkpointer(store, metrics=metrics, sealer=_keyring("k3")[0])
    async with AgentSession[Call]() as session:
        run = await resume_or_start(flow, session, checkpointer=checkpointer,
                                    call_id="rotating-call", llm=ScriptedLLM(["Hello."]))
        assert not run.resuming and run.context.pin_hint is None
    await checkpointer.aclose()
    assert metrics.value("handoff_resumes_total", flow="callcenter", outcome="failed") == 1
    await store.aclose()


async def test_an_unchanged_sealed_checkpoint_is_not_written_again() -> None:
    """Identical checkpoints are not written twice, sealed ones too: the sealed section
    of an unchanged Context is not sealed afresh (a new nonce would make every capture
    look new, and seal on the call's path each time)."""
    from .test_pii_sinks import flow as vault_flow

    sealer = KeyringSealer([("k1", os.urandom(32))])
    checkpointer = Checkpointer(MemoryStore(), sealer=sealer, forget_on=frozenset())
    try:
        async with vault_flow.session(llm=ScriptedLLM(["Hello."])) as run:
            run.context.pin = "QX7731ZK"
            checkpointer.track(run, "same")
            taken = checkpointer.taken
            assert not checkpointer.checkpoint(run) and checkpointer.taken == taken
            run.context.pin = "ZK4410QX"
            assert checkpointer.checkpoint(run) and checkpointer.taken == taken + 1
            assert await checkpointer.flush(5)
            stored = await checkpointer.store.load("same")
            assert stored is not None and isinstance(stored.sensitive, str)
            assert stored.context_data(sealer)["pin"] == "ZK4410QX"
    finally:
        assert checkpointer not in vault_flow.observers  # it observed that one run only
        await checkpointer.aclose()
