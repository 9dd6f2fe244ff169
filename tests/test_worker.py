"""The voice worker: start-up checks, prewarm, health/metrics, load, SIGTERM drain.

The worker tests run ``handoff run … start`` as a real subprocess on LiveKit's
``AgentServer``. There is no LiveKit server here, so the worker keeps retrying its
registration (``LIVEKIT_URL`` points at a closed loopback port) while everything
else runs for real: the secrets check, the forkserver job processes and their
prewarm (Silero VAD loaded), the health endpoint, the Prometheus gauge, and one
*simulated call* (``--simulate-call``: LiveKit's fake job — a real job process
running the flow's AgentSession with a mock room and no audio), which keeps an
active job through the SIGTERM drain and is checkpointed when the drain times out.

A second simulated call hangs up by itself during the drain, so the worker exits
when it ends rather than at the drain timeout.

Not covered here: registration with a real LiveKit server, job dispatch to a real
room, audio through STT/TTS, console mode with audio devices.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from livekit.agents import Agent
from livekit.agents.utils import is_given

from handoff import Context, Flow, State, TierConfig, Tiers, transition
from handoff.telemetry.metrics import worker_gauges
from handoff.voice import VoiceConfig, Voices, VoiceSettings
from handoff.worker import (
    ActiveJobsLoad,
    WorkerSettings,
    required_secrets,
)

from .fake_livekit import FakeLiveKit

REPO = Path(__file__).resolve().parents[1]

QUIET_FLOW = textwrap.dedent('''
    from livekit.agents import RunContext

    from handoff import Context, Flow, State, transition


    class Call(Context):
        name: str | None = None


    class Listen(State[Call]):
        """Waits for the caller (does not speak first: no model is reachable here)."""

        instructions = "Listen."
        speaks_first = False

        @transition(to="Done")
        async def finished(self, ctx: RunContext[Call]) -> None:
            """Call when done."""


    class Done(State[Call]):
        """Over."""

        instructions = "Bye."


    flow = Flow("quiet", context=Call, initial=Listen, states=[Listen, Done], final=[Done])
''')


FINISHING_FLOW = QUIET_FLOW.replace(
    '    speaks_first = False\n',
    '    speaks_first = False\n'
    '\n'
    '    async def on_enter(self) -> None:\n'
    '        """The caller hangs up 5 s into the call."""\n'
    '        import asyncio\n'
    '\n'
    '        from livekit.agents import get_job_context\n'
    '\n'
    '        async def finish() -> None:\n'
    '            await asyncio.sleep(5)\n'
    '            await self.run.go("Done")\n'
    '            get_job_context().shutdown("caller hung up")\n'
    '\n'
    '        self._finisher = asyncio.create_task(finish())\n',
)


MOVING_FLOW = QUIET_FLOW.replace(
    '    speaks_first = False\n',
    '    speaks_first = False\n'
    '\n'
    '    async def on_enter(self) -> None:\n'
    '        """The call moves on once the agent listens: a transition in the job process."""\n'
    '        import asyncio\n'
    '\n'
    '        async def move() -> None:\n'
    '            listening = asyncio.Event()\n'
    '            self.session.on("agent_state_changed",\n'
    '                            lambda ev: ev.new_state == "listening" and listening.set())\n'
    '            if self.session.agent_state != "listening":\n'
    '                await listening.wait()\n'
    '            await self.run.go("Done")\n'
    '\n'
    '        self._mover = asyncio.create_task(move())\n',
).replace('Flow("quiet"', 'Flow("moving"')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "quietflow.py").write_text(QUIET_FLOW)
    (tmp_path / "finishingflow.py").write_text(FINISHING_FLOW)
    (tmp_path / "movingflow.py").write_text(MOVING_FLOW)
    return tmp_path


def _env(project: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LIVEKIT_", "OPENAI_", "HANDOFF_", "VAULT_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(project)])
    env.update(extra)
    return env


def _handoff(*args: str) -> list[str]:
    return [sys.executable, "-m", "handoff.cli", "run", *args]


# -- start-up: the secrets check --------------------------------------------------------
def test_start_fails_at_once_naming_each_missing_secret(project: Path) -> None:
    key_value = "APIkey-" + os.urandom(6).hex()
    proc = subprocess.run(
        _handoff("quietflow:flow", "start"), cwd=project, capture_output=True, text=True,
        timeout=60, env=_env(project, HANDOFF_SECRETS="env,files",
                             HANDOFF_SECRETS_DIR=str(project / "no-such-dir"),
                             LIVEKIT_URL="ws://127.0.0.1:9", LIVEKIT_API_KEY=key_value),
    )
    assert proc.returncode == 2
    assert ("missing secrets: LIVEKIT_API_SECRET (for the LiveKit server connection), "
            "OPENAI_API_KEY (for tier 'fast' (LLM))") in proc.stderr
    assert "searched env, files[" in proc.stderr
    assert key_value not in proc.stdout + proc.stderr
    # it failed before anything started: no connection attempt, no job process
    assert "connect to livekit" not in proc.stderr and "initializing process" not in proc.stderr


def test_console_mode_needs_no_livekit_secrets_but_still_the_model_key(project: Path) -> None:
    proc = subprocess.run(_handoff("quietflow:flow", "console"), cwd=project,
                          capture_output=True, text=True, timeout=60,
                          env=_env(project, HANDOFF_SECRETS="env"))
    assert proc.returncode == 2
    assert "missing secret: OPENAI_API_KEY (for tier 'fast' (LLM)) (searched env)" in proc.stderr


def test_a_bad_flow_reference_fails_before_anything_starts(project: Path) -> None:
    proc = subprocess.run(_handoff("quietflow:nope", "start"), cwd=project, capture_output=True,
                          text=True, timeout=60, env=_env(project))
    assert proc.returncode == 2 and "has no attribute 'nope'" in proc.stderr


# -- a running worker ------------------------------------------------------------------------
@dataclass
class Worker:
    proc: subprocess.Popen[str]
    health: str
    metrics: str
    log: Path
    checkpoints: Path
    secret: str

    def get(self, url: str) -> str:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return str(resp.read().decode())

    def status(self, path: str) -> tuple[int, str]:
        """(HTTP status, body) of a health endpoint, 503s included."""
        try:
            return 200, self.get(self.health + path)
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def wait_for(self, what: str, check: Any, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"worker exited ({self.proc.returncode}) waiting for {what}:\n"
                            + self.log.read_text()[-3000:])
            try:
                last = check()
                if last:
                    return last
            except OSError:
                pass
            time.sleep(0.3)
        pytest.fail(f"timed out waiting for {what} (last: {last!r}):\n"
                    + self.log.read_text()[-3000:])


DRAIN_TIMEOUT = 3


@pytest.fixture
def start_worker(project: Path) -> Iterator[Any]:
    """Start ``handoff run MODULE:flow start --simulate-call …`` as a subprocess."""
    started: list[subprocess.Popen[str]] = []

    def start(flow: str, drain_timeout: int, *, livekit_url: str | None = None,
              rooms: tuple[str, ...] = ("smoke-room",), checkpoints: bool = True,
              **env_extra: str) -> Worker:
        secret = "lk-secret-" + os.urandom(8).hex()
        secrets_dir = project / "secrets"
        secrets_dir.mkdir(exist_ok=True)
        (secrets_dir / "LIVEKIT_API_SECRET").write_text(secret + "\n")  # a mounted k8s Secret
        health, metrics = _free_port(), _free_port()
        log = project / "worker.log"
        env = _env(project, HANDOFF_SECRETS="env,files", HANDOFF_SECRETS_DIR=str(secrets_dir),
                   LIVEKIT_URL=livekit_url or f"ws://127.0.0.1:{_free_port()}",
                   LIVEKIT_API_KEY="APIkey", OPENAI_API_KEY="sk-offline",
                   HANDOFF_IDLE_PROCESSES=str(len(rooms)), **env_extra)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # handoff run sets it up itself
        if checkpoints:
            env["HANDOFF_CHECKPOINT_DIR"] = str(project / "checkpoints")
        calls = [arg for room in rooms for arg in ("--simulate-call", room)]
        with log.open("w") as out:
            proc = subprocess.Popen(
                _handoff(flow, "start", "--health-port", str(health),
                         "--metrics-port", str(metrics), "--drain-timeout", str(drain_timeout),
                         "--max-jobs", "4", *calls),
                cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
                start_new_session=True,
            )
        started.append(proc)
        return Worker(proc, f"http://127.0.0.1:{health}", f"http://127.0.0.1:{metrics}", log,
                      project / "checkpoints", secret)

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_worker_prewarms_reports_load_and_drains_on_sigterm(start_worker: Any) -> None:
    worker: Worker = start_worker("quietflow:flow", DRAIN_TIMEOUT)
    # health endpoint (the Deployment's liveness/readiness probes)
    assert worker.wait_for("health", lambda: worker.get(worker.health + "/")) == "OK"
    # the simulated call is an active job; load = 1 / max_jobs
    info = worker.wait_for("an active job and its load", lambda: (
        (i := json.loads(worker.get(worker.health + "/worker"))).get("active_jobs", 0) >= 1
        and i.get("worker_load", 0) > 0 and i))
    assert info["active_jobs"] == 1 and info["worker_load"] == pytest.approx(0.25)
    metrics = worker.wait_for("metrics", lambda: (
        (m := worker.get(worker.metrics + "/metrics")) and "handoff_worker_active_jobs 1.0" in m
        and m))
    assert "handoff_worker_max_jobs 4.0" in metrics
    log = worker.wait_for("prewarm", lambda: (
        (t := worker.log.read_text()) and "prewarmed pid" in t and "simulated call" in t and t))
    assert "silero VAD and flow quiet" in log

    started = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)
    code = worker.proc.wait(timeout=DRAIN_TIMEOUT + 20)
    elapsed = time.monotonic() - started
    log = worker.log.read_text()
    assert code == 0, log[-3000:]
    assert "draining worker" in log
    # the call did not end by itself: the drain waited its full time, then the call was
    # checkpointed and the worker exited well inside a Kubernetes grace period
    assert DRAIN_TIMEOUT <= elapsed < DRAIN_TIMEOUT + 15, elapsed
    [saved] = _checkpoints(worker.checkpoints)
    assert saved["flow"]["name"] == "quiet" and saved["state"] == "Listen"
    assert saved["call_id"].startswith("mock-job-") and saved["log"] == []
    assert worker.secret not in log  # the LiveKit secret (read from the files provider)


def test_sigterm_lets_a_running_call_finish_then_exits_without_waiting_the_drain(
    start_worker: Any,
) -> None:
    """The simulated call hangs up 5 s after it starts: the drain ends with it, long
    before the 60 s drain timeout, and a call that reached a final state is not
    checkpointed."""
    worker: Worker = start_worker("finishingflow:flow", 60)
    worker.wait_for("an active job", lambda: json.loads(
        worker.get(worker.health + "/worker")).get("active_jobs", 0) >= 1)
    started = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)
    code = worker.proc.wait(timeout=60)
    elapsed = time.monotonic() - started
    log = worker.log.read_text()
    assert code == 0, log[-3000:]
    assert "draining worker" in log
    assert "ended in state Done (caller hung up)" in log
    assert elapsed < 20, elapsed  # the call's ~5 s, not the 60 s drain timeout
    assert "drain timed out" not in log
    # a call that ended leaves nothing of itself behind: only its tombstone
    assert [(c["ended"], c["context"], c["history"]) for c in _checkpoints(worker.checkpoints)
            ] in ([], [(True, {}, [])])


def test_metrics_of_every_job_process_reach_the_workers_metrics(start_worker: Any) -> None:
    """Two simulated calls in two job processes, no checkpoint store: the worker's
    /metrics (scraped over HTTP) has the calls' transitions and active runs, the HPA
    gauge equal to the active jobs /worker reports, and LiveKit's own metrics."""
    worker: Worker = start_worker("movingflow:flow", DRAIN_TIMEOUT, rooms=("room-a", "room-b"),
                                  checkpoints=False)
    info = worker.wait_for("two active jobs", lambda: (
        (i := json.loads(worker.get(worker.health + "/worker")))["active_jobs"] == 2 and i))
    moved = 'handoff_transitions_total{flow="moving",from_state="Listen",to_state="Done"} 2.0'
    metrics = worker.wait_for("both calls' transitions in /metrics", lambda: (
        (m := worker.get(worker.metrics + "/metrics")) and moved in m
        and "handoff_worker_active_jobs 2.0" in m and m))
    assert f"handoff_worker_active_jobs {float(info['active_jobs'])}" in metrics
    assert "handoff_worker_max_jobs 4.0" in metrics
    assert 'handoff_active_flow_runs{flow="moving"} 2.0' in metrics  # no checkpoint store
    assert 'handoff_time_in_state_seconds_count{flow="moving",state="Listen"} 2.0' in metrics
    assert re.search(r"^lk_agents_worker_load\{.*\} 0\.5$", metrics, re.M), metrics
    assert re.search(r"^lk_agents_active_job_count\{.*\} 2\.0$", metrics, re.M), metrics
    assert "handoff_duration_seconds_bucket" in metrics
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=DRAIN_TIMEOUT + 30) == 0


def test_ready_only_while_registered_with_livekit(start_worker: Any) -> None:
    """A LiveKit server on loopback holds the registration answer: the worker is live but
    not ready until LiveKit registered it, then ready; draining makes it unready."""
    livekit = FakeLiveKit()
    try:
        worker: Worker = start_worker("quietflow:flow", DRAIN_TIMEOUT, livekit_url=livekit.url,
                                      rooms=())
        assert worker.wait_for("liveness", lambda: worker.status("/live")) == (200, "OK")
        worker.wait_for("the worker asking to register", lambda: livekit.registrations)
        assert worker.status("/ready") == (503, "not registered with livekit yet")
        assert json.loads(worker.get(worker.health + "/worker"))["registered"] is False
        livekit.allow_registration.set()
        assert worker.wait_for("readiness", lambda: (
            (s := worker.status("/ready"))[0] == 200 and s)) == (200, "OK")
        info = json.loads(worker.get(worker.health + "/worker"))
        assert info["registered"] is True and info["worker_id"] == livekit.worker_id
        assert worker.status("/") == (200, "OK")
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(timeout=60) == 0
        assert "registered worker" in worker.log.read_text()
    finally:
        livekit.close()


def test_a_worker_that_cannot_register_is_never_ready_and_exits_1(start_worker: Any) -> None:
    worker: Worker = start_worker("quietflow:flow", DRAIN_TIMEOUT, rooms=(),
                                  HANDOFF_REGISTER_RETRIES="2")
    # LiveKit is unreachable (a closed port): live, never ready, until it gives up
    code, reason = worker.wait_for("an answer from /ready", lambda: worker.status("/ready"))
    assert code == 503 and reason in ("not registered with livekit yet",
                                      "failed to connect to livekit")
    assert worker.proc.wait(timeout=120) == 1
    errors = [line for line in worker.log.read_text().splitlines() if line.startswith("error:")]
    assert len(errors) == 1, worker.log.read_text()[-3000:]
    assert errors[0].startswith("error: could not register with LiveKit at ws://127.0.0.1:")
    assert "after 2 attempts (last error: " in errors[0]


def _checkpoints(folder: Path) -> list[dict[str, Any]]:
    """The checkpoints in the worker's SQLite store (HANDOFF_CHECKPOINT_DIR/checkpoints.db)."""
    import sqlite3

    db = folder / "checkpoints.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT data FROM handoff_checkpoints").fetchall()
    return [json.loads(row[0]) for row in rows]


# -- pieces ----------------------------------------------------------------------------------
def test_load_is_active_jobs_over_max_jobs_and_is_published() -> None:
    @dataclass
    class FakeServer:  # only what the load function reads: AgentServer.active_jobs
        active_jobs: list[object]

    load = ActiveJobsLoad(max_jobs=4)
    assert load(FakeServer([object()] * 3)) == 0.75  # type: ignore[arg-type]
    assert worker_gauges().active_jobs._value.get() == 3
    assert worker_gauges().max_jobs._value.get() == 4
    assert load(FakeServer([object()] * 9)) == 1.0  # type: ignore[arg-type]


def test_settings_from_env_and_cli_overrides() -> None:
    s = WorkerSettings.from_env("m:f", {"HANDOFF_MAX_JOBS": "12", "HANDOFF_METRICS_PORT": "",
                                        "HANDOFF_DRAIN_TIMEOUT": "900"}, drain_timeout=30)
    assert (s.max_jobs, s.metrics_port, s.drain_timeout, s.health_port) == (12, None, 30, 8081)
    with pytest.raises(ValueError, match="HANDOFF_MAX_JOBS = '0': Input should be greater than or equal"):
        WorkerSettings.from_env("m:f", {"HANDOFF_MAX_JOBS": "0"})


@pytest.mark.parametrize("environ", [{}, {"HANDOFF_METRICS_PORT": "9200"}])
def test_metrics_port_0_on_the_command_line_disables_metrics_like_the_environment(
        environ: dict[str, str]) -> None:
    assert WorkerSettings.from_env("m:f", environ, metrics_port=0).metrics_port is None
    assert WorkerSettings.from_env("m:f", environ, metrics_port=9300).metrics_port == 9300


@pytest.mark.parametrize("overrides", [{"metrics_port": 70000}, {"health_port": -1}])
def test_a_port_out_of_range_is_refused(overrides: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=r"^--(metrics|health)-port = -?\d+: Input should be"):
        WorkerSettings.from_env("m:f", {}, **overrides)


class Call(Context):
    topic: str | None = None


class Front(State[Call]):
    """Front desk."""

    instructions = "Help."

    @transition(to="Billing")
    async def billing(self) -> None:
        """Call for billing."""


class Billing(State[Call]):
    """Billing, with its own voice and no barge-in."""

    instructions = "Bill."
    tier = "local"
    tts_voice: ClassVar[str] = "sage"
    interruptible: ClassVar[bool] = False
    endpointing_min_delay: ClassVar[float] = 0.8
    turn_mode: ClassVar[str] = "stt"


def _flow() -> Flow[Call]:
    tiers = Tiers({"fast": TierConfig("fast", model="gpt-4o-mini", fallbacks=("smart",)),
                   "smart": TierConfig("smart", model="gpt-4o", api_key_env="SMART_KEY"),
                   "local": TierConfig("local", model="llama", base_url="http://127.0.0.1:1")})
    return Flow("voice", context=Call, initial=Front, states=[Front, Billing], final=[Billing],
                tiers=tiers)


def test_required_secrets_follow_tiers_fallbacks_and_voice() -> None:
    flow = _flow()
    needed = required_secrets(flow)
    assert list(needed) == ["LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET",
                            "OPENAI_API_KEY", "SMART_KEY"]  # local needs no key
    assert needed["OPENAI_API_KEY"] == "tier 'fast' (LLM)"
    assert needed["SMART_KEY"] == "tier 'smart' (LLM, fallback)"
    assert needed["LIVEKIT_API_SECRET"] == "the LiveKit server connection"
    with_voice = required_secrets(flow, VoiceConfig(api_key_env="TTS_KEY"))
    assert list(with_voice)[-1] == "TTS_KEY"
    assert with_voice["TTS_KEY"] == "the voice (speech-to-text and text-to-speech)"
    assert list(required_secrets(flow, connect=False, models=False)) == []


def test_per_state_voice_and_turn_overrides_reach_that_states_agent() -> None:
    voices = Voices(VoiceConfig(tts_voice="ash"), secrets=lambda name: f"key-for-{name}")
    assert voices.agent_options(Front) == {}  # nothing differs: the session's settings apply
    options = voices.agent_options(Billing)
    assert set(options) == {"tts", "turn_handling"}
    assert options["tts"]._opts.voice == "sage"
    assert options["turn_handling"] == {"turn_detection": "stt",
                                        "interruption": {"enabled": False},
                                        "endpointing": {"min_delay": 0.8}}
    assert voices.agent_options(Billing)["tts"] is options["tts"]  # made once per process
    agent = Agent(instructions="x", **options)
    assert agent.tts is options["tts"] and agent.allow_interruptions is False
    assert agent.turn_detection == "stt" and agent.min_endpointing_delay == 0.8
    with pytest.raises(ValueError, match="turn_mode 'x'"):
        VoiceConfig(turn_mode="x").turn_handling()
    session = voices.session_options()
    assert session["tts"]._opts.voice == "ash" and session["stt"] is voices.stt()


def test_voice_config_from_pyproject_then_environment(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.handoff.voice]\ntts_voice = "coral"\nlanguage = "de"\n')
    cfg = VoiceSettings.load({"HANDOFF_TTS_VOICE": "verse"}, start=tmp_path)
    assert (cfg.tts_voice, cfg.language) == ("verse", "de")
    (tmp_path / "pyproject.toml").write_text('[tool.handoff.voice]\nvoice = "x"\n')
    with pytest.raises(ValueError, match=r"unknown setting\(s\) voice in the voice table"):
        VoiceSettings.load({}, start=tmp_path)


async def test_a_call_gets_tiers_whose_keys_come_from_the_secrets_chain(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """start_call in a (LiveKit fake) job context: the tier LLM gets its key from the
    chain's files provider, not from the environment; the session runs the flow."""
    from livekit.agents.testing import fake_job_context

    from handoff.secrets import EnvProvider, FileProvider, SecretChain
    from handoff.worker import FLOW_ENV, start_call

    monkeypatch.syspath_prepend(str(project))
    monkeypatch.setenv(FLOW_ENV, "quietflow:flow")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-must-not-be-used")
    (project / "OPENAI_API_KEY").write_text("sk-from-mounted-secret\n")
    chain = SecretChain([FileProvider(project), EnvProvider()])
    with fake_job_context(job_id="job-42") as ctx:
        run = await start_call(ctx, chain)
        try:
            assert run.call_id == "job-42" and run.state == "Listen"
            assert run.agent is not None and run.session is not None
            assert run.agent.llm._client.api_key == "sk-from-mounted-secret"  # type: ignore[union-attr]
        finally:
            await run.session.aclose()


def test_flow_agent_options_hook_gives_each_state_agent_its_own_voice() -> None:
    """The core hook the worker sets: a State's agent is built with its overrides."""
    from handoff.testing import ScriptedLLM

    flow = _flow()
    voices = Voices(VoiceConfig(tts_voice="ash"), secrets=lambda name: f"key-for-{name}")
    flow.agent_options = voices.agent_options
    run = flow.new_run(llm=ScriptedLLM(["x"]))
    billing, front = run.make_agent("Billing"), run.make_agent("Front")
    assert billing.tts is voices.agent_options(Billing)["tts"]
    assert billing.tts._opts.voice == "sage" and billing.allow_interruptions is False
    assert not is_given(front.tts)  # nothing overridden: the session's TTS applies
    run.close()
