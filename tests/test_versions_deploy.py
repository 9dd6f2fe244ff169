"""Deploying a new flow version with calls in flight, as docs/operations.md describes it.

Version 1 of the test call centre (``tests/versioned``) checkpoints calls in one
process and dies mid-call; version 2 (Greeter removed, Billing renamed Payments,
``account_id`` renamed, ``refund_limit`` retyped from units to cents) resumes them in
new processes, over SQLite and a real redis-server, and ``handoff migrate`` migrates
what is left in the store. The commands come from the docs section itself.
"""

from __future__ import annotations

import json
import re
import shlex
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from handoff.cli import app
from handoff.sealing import KEYS_SECRET, new_key_entry

from .ops_support import REPO, RedisServer, free_port, says

WORKER = REPO / "tests" / "versions_worker.py"
V1 = "tests.versioned.callcenter_v1"
V2 = "tests.versioned.callcenter_v2"
PREFIX = "handoff:checkpoint:"
runner = CliRunner()


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'checkpoints.db'}"
        return
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def events(proc: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    """The worker's JSON lines by ``call_id`` and kind (``written``/``resumed``/``after``)."""
    out: dict[str, dict[str, Any]] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            out.setdefault(event["call_id"], {})[event["kind"]] = event
    return out


def write_v1(store: str, *calls: str) -> dict[str, dict[str, Any]]:
    """Version 1 takes ``CALL=STATE`` calls to their states in one worker process."""
    return {k: v["written"] for k, v in events(run(str(WORKER), "write", V1, store, *calls)).items()}


def resume_v2(store: str, *args: str, flow: str = V2) -> dict[str, dict[str, Any]]:
    """A new worker process of version 2 resumes calls: their events by call id."""
    return events(run(str(WORKER), "resume", flow, store, *args))


def handoff(*args: str) -> Result:
    """The ``handoff`` command (in this process: the processes that matter are workers)."""
    return runner.invoke(app, list(args))


def stored(store: str, call_id: str) -> str | None:
    """The raw stored document of a call, as the store holds it."""
    if store.startswith("sqlite:///"):
        with sqlite3.connect(store.removeprefix("sqlite://")) as conn:
            row = conn.execute("SELECT data FROM handoff_checkpoints WHERE call_id = ?",
                               (call_id,)).fetchone()
        return None if row is None else str(row[0])
    import redis

    client = redis.Redis.from_url(store)
    try:
        data = client.hget(f"{PREFIX}{call_id}", "data")
    finally:
        client.close()
    return None if data is None else data.decode()  # type: ignore[union-attr]


def doc_of(store: str, call_id: str) -> dict[str, Any]:
    text = stored(store, call_id)
    assert text is not None, call_id
    return dict(json.loads(text))


def documented_commands() -> list[tuple[list[str], int]]:
    """The ``handoff`` commands of the docs' deploying section, with their exit statuses."""
    text = (REPO / "docs" / "operations.md").read_text()
    section = text.split("## Deploying a new flow version", 1)[1].split("\n## ", 1)[0]
    out = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            command, _, comment = line.partition("  # exit ")
            if command.startswith("handoff "):
                out.append((shlex.split(command)[1:], int(comment)))
    return out


def test_the_docs_commands_are_the_ones_tested() -> None:
    assert [(c[0], code) for c, code in documented_commands()] == [
        ("diff", 1), ("diff", 0), ("migrate", 0), ("migrate", 0)]


def docs_command(index: int, store: str) -> list[str]:
    args, _ = documented_commands()[index]
    return [store if a == "$STORE" else a for a in args]


def test_diff_of_the_two_versions_as_the_docs_show_it() -> None:
    (unmigrated, code_1), (migrated, code_0) = documented_commands()[:2]
    breaking = handoff(*unmigrated)
    assert breaking.exit_code == code_1 == 1, breaking.output
    docs = (REPO / "docs" / "operations.md").read_text()
    in_flight = breaking.stdout.split("#### Calls in flight")[1]
    rows = [r for r in in_flight.splitlines() if r.startswith(("| 🔴", "| 🟠"))]
    assert len(rows) == 5 and all(row in docs for row in rows)
    assert ('Migration("1", "2",\n'
            '          states={"Billing": "Payments", "Greeter": "Triage"},\n'
            '          fields={"account_id": "account"},\n'
            '          values={"refund_limit": int})\n') in breaking.stdout
    covered = handoff(*migrated)
    assert covered.exit_code == code_0 == 0, covered.output
    assert covered.stdout.count("covered by 1→2") == 4
    as_json = json.loads(handoff(*migrated, "-f", "json").stdout)
    assert as_json["breaking"] == 0 and as_json["states"] == {
        "Billing": "needs-migration", "Escalation": "safe", "Greeter": "needs-migration",
        "Triage": "safe", "Wrapup": "tightens"}


def test_old_calls_resume_in_the_new_version_and_migrate_in_the_store(store_url: str) -> None:
    written = write_v1(store_url, "greeter=Greeter", "billing=Billing", "wrapup=Wrapup",
                       "early=Billing")
    assert {k: v["state"] for k, v in written.items()} == {
        "greeter": "Greeter", "billing": "Billing", "wrapup": "Wrapup", "early": "Billing"}
    assert doc_of(store_url, "billing")["flow"] == {"name": "callcenter", "version": "1"}

    # a v2 worker picks up a v1 call before anyone ran `handoff migrate`: migrated on load
    got = resume_v2(store_url, "early", "--line", "Refund the 45 please.",
                    "--call", "open_refund", "--args", '{"amount": 45}')["early"]
    resumed = got["resumed"]
    assert (resumed["outcome"], resumed["state"], resumed["agent"]) == (
        "migrated", "Payments", "Payments")
    assert resumed["migrations"] == ["1→2"] and resumed["resumes"]["migrated"] == 1
    assert resumed["event"] == {"kind": "call_started", "flow_version": "2", "resumption": {
        "call_id": "early", "outcome": "migrated", "state": "Payments",
        "checkpoint_state": "Billing", "checkpoint_version": "1", "flow_version": "2",
        "migrations": ["1→2"], "error": None}}
    assert resumed["context"] == {"caller_name": "Dana", "account": "4411", "verified": True,
                                  "refund_limit": 10_000, "refund_ticket": None, "pin": "1234"}
    # the retyped field works with the new code: 45.00 is within 10 000 cents
    assert got["after"]["state"] == "Wrapup" and got["after"]["asked_by"] == [
        "Payments", "Wrapup"]
    assert doc_of(store_url, "early")["flow"]["version"] == "2"

    # the dry run reports what would move and writes nothing
    before = {c: stored(store_url, c) for c in ("greeter", "billing", "wrapup", "early")}
    dry = handoff("migrate", *docs_command(2, store_url)[1:])
    assert dry.exit_code == 0, dry.output
    assert dry.stdout == (
        "flow callcenter v2 (dry run: nothing written)\n"
        "  v2 (current): 1 call(s), nothing to do\n"
        "  v1: 3 call(s)\n"
        "    would move 1 call(s): Billing → Payments\n"
        "    would move 1 call(s): Greeter → Triage\n"
        "    would move 1 call(s): Wrapup (same state)\n")
    assert {c: stored(store_url, c) for c in before} == before

    applied = handoff("migrate", *docs_command(3, store_url)[1:])
    assert applied.exit_code == 0, applied.output
    assert "    moved 1 call(s): Greeter → Triage\n" in applied.stdout
    migrated = {c: doc_of(store_url, c) for c in ("greeter", "billing", "wrapup")}
    assert {c: (d["flow"]["version"], d["state"]) for c, d in migrated.items()} == {
        "greeter": ("2", "Triage"), "billing": ("2", "Payments"), "wrapup": ("2", "Wrapup")}
    billing = migrated["billing"]
    assert billing["context"]["account"] == "4411" and billing["context"]["refund_limit"] == 10_000
    assert billing["sensitive"] == {"pin": "1234"} and "pin" not in billing["context"]
    assert billing["seq"] == json.loads(before["billing"] or "{}")["seq"]
    assert billing["history"] == json.loads(before["billing"] or "{}")["history"]
    assert stored(store_url, "early") == before["early"]  # already v2: untouched

    # calls the store migrated resume as they are, each in a new process
    picked_up = resume_v2(store_url, "greeter", "wrapup")
    assert {c: (e["resumed"]["outcome"], e["resumed"]["state"])
            for c, e in picked_up.items()} == {
        "greeter": ("resumed", "Triage"), "wrapup": ("resumed", "Wrapup")}
    again = handoff("migrate", "tests.versioned.callcenter_v2:flow", "--store", store_url)
    assert "  v2 (current): 4 call(s), nothing to do\n" in again.stdout


def test_a_raising_migration_keeps_the_checkpoint_and_the_call_falls_back(
    store_url: str,
) -> None:
    write_v1(store_url, "doomed=Billing")
    original = stored(store_url, "doomed")
    flow = "tests.versioned.callcenter_v2:buggy"

    dry = handoff("migrate", flow, "--store", store_url, "--dry-run")
    assert dry.exit_code == 1
    assert ("    FAILED doomed: migration 1→2 (1→2) raised ValueError at callcenter_v2.py:"
            in dry.stdout) and "(kept)" in dry.stdout
    assert stored(store_url, "doomed") == original

    failed = handoff("migrate", flow, "--store", store_url, "--format", "json")
    assert failed.exit_code == 1
    report = json.loads(failed.stdout)
    assert report["failed"] == 1 and list(report["versions"]["1"]["failed"]) == ["doomed"]
    kept, was = doc_of(store_url, "doomed"), json.loads(original or "{}")
    mark = kept.pop("migration_failure")
    assert kept == was  # state, Context, version, seq, log, history: as v1 wrote them
    assert mark["to"] == "2" and "cents_from_text" in mark["error"]

    # a v2 worker resumes it anyway: the fallback state, the fields that still fit
    resumed = resume_v2(store_url, "doomed", flow=flow)["doomed"]["resumed"]
    assert (resumed["outcome"], resumed["state"]) == ("migration_failed", "Triage")
    assert resumed["resumes"]["migration_failed"] == 1
    assert "raised ValueError" in resumed["error"]
    assert resumed["event"]["resumption"]["outcome"] == "migration_failed"
    context = resumed["context"]
    assert (context["caller_name"], context["verified"], context["pin"]) == ("Dana", True, "1234")
    assert context["account"] is None  # account_id has no field to land in without the migration


def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HANDOFF_CHECKPOINT_STORE", raising=False)
    flow = "tests.versioned.callcenter_v2:flow"
    cases = [
        ([flow, "--store", f"redis://127.0.0.1:{free_port()}/0"], "cannot read the store"),
        ([flow, "--store", f"sqlite:///{tmp_path / 'none.db'}"], "no such SQLite file"),
        ([flow, "--store", "mysql://x"], "use redis://… or sqlite:///path"),
        (["tests.versioned.nothing:flow", "--store", "sqlite:///x"], "cannot import"),
        ([flow], "--store URL is required"),
    ]
    for args, message in cases:
        result = handoff("migrate", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_the_dry_run_names_each_call_a_missing_migration_would_strand(store_url: str) -> None:
    """Version 2 without its migration (a missing link in the chain): the dry run lists
    every stored call that would lose its state or a field, exactly as a v2 worker then
    resumes it, and exits 1 unless --allow-loss."""
    write_v1(store_url, "greeter=Greeter", "billing=Billing", "wrapup=Wrapup")
    before = {c: stored(store_url, c) for c in ("greeter", "billing", "wrapup")}
    flow = "tests.versioned.callcenter_v2:unmigrated"
    dry = handoff("migrate", flow, "--store", store_url, "--dry-run")
    assert dry.exit_code == 1, dry.output
    losing = dict(re.findall(r"WOULD LOSE (\w+): (.*)\n", dry.stdout))
    assert set(losing) == {"greeter", "billing", "wrapup"}, dry.stdout
    assert "resumes in Triage instead of Billing" in losing["billing"]
    assert "they still fit" not in dry.stdout and "3 call(s) would lose" in dry.stdout
    assert {c: stored(store_url, c) for c in before} == before
    report = json.loads(handoff("migrate", flow, "--store", store_url, "--dry-run",
                                "--format", "json").stdout)
    assert report["losing"] == 3 and set(report["versions"]["1"]["losing"]) == set(losing)
    accepted = handoff("migrate", flow, "--store", store_url, "--dry-run", "--allow-loss")
    assert accepted.exit_code == 0, accepted.output

    # what a v2 worker then does is what the dry run said, call by call
    resumed = resume_v2(store_url, "greeter", "billing", "wrapup", flow=flow)
    for call_id, what in losing.items():
        got = resumed[call_id]["resumed"]
        assert got["outcome"] in ("fallback", "migration_failed"), got
        where = re.search(r"resumes in (\w+) instead of (\w+)", what)
        assert (where is None) == (got["state"] == doc_of_v1(before[call_id])["state"])
        if where is not None:
            assert got["state"] == where[1]
        fields = re.search(r"loses field\(s\) ([\w, ]+)", what)
        for name in fields[1].split(", ") if fields else []:
            assert name not in got["context"], (name, got)


def doc_of_v1(text: str | None) -> dict[str, Any]:
    assert text is not None
    return dict(json.loads(text))


def test_migrate_opens_sealed_checkpoints_with_the_workers_keys_and_reseals_them(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """v1 workers sealed the pii section with k1; the key set then rotated to k2."""
    k1, k2 = new_key_entry("k1"), new_key_entry("k2")
    monkeypatch.setenv("HANDOFF_SECRETS", "env")
    monkeypatch.setenv(KEYS_SECRET, k1)
    write_v1(store_url, "early=Billing")
    assert handoff("migrate", V2 + ":flow", "--store", store_url).exit_code == 0  # v2, k1
    write_v1(store_url, "billing=Billing")
    original = stored(store_url, "billing")
    assert str(doc_of(store_url, "billing")["sensitive"]).startswith("hs1.k1.")

    # k1 dropped too early: nothing can be opened, nothing is written or marked, exit 1
    monkeypatch.setenv(KEYS_SECRET, k2)
    blind = handoff("migrate", V2 + ":flow", "--store", store_url)
    assert blind.exit_code == 1, blind.output
    assert "UNREADABLE billing: cannot be opened" in blind.stdout and "'k1'" in blind.stdout
    assert stored(store_url, "billing") == original

    # the rotated key set (k2 first, k1 kept): migrated, and re-sealed with k2; the call
    # already at v2 is re-sealed with k2 too
    monkeypatch.setenv(KEYS_SECRET, f"{k2},{k1}")
    applied = handoff("migrate", V2 + ":flow", "--store", store_url)
    assert applied.exit_code == 0, applied.output
    assert "    moved 1 call(s): Billing → Payments\n" in applied.stdout
    assert "(current): 1 call(s), nothing to do but re-seal 1 with the current key" in (
        applied.stdout)
    assert doc_of(store_url, "early")["sensitive"].startswith("hs1.k2.")
    migrated = doc_of(store_url, "billing")
    assert migrated["flow"]["version"] == "2" and migrated["sensitive"].startswith("hs1.k2.")
    assert not says(json.loads(stored(store_url, "billing") or "{}"), "1234")
    # a v2 worker that holds only k2 now resumes it with its pii
    monkeypatch.setenv(KEYS_SECRET, k2)
    resumed = resume_v2(store_url, "billing")["billing"]["resumed"]
    assert (resumed["outcome"], resumed["state"]) == ("resumed", "Payments")
    assert resumed["context"]["pin"] == "1234" and resumed["context"]["account"] == "4411"
