"""The voice worker: a Flow served by LiveKit's ``AgentServer``, one job per room.

``handoff run examples.callcenter:flow start`` (see :mod:`handoff.cli`) does, in order:

1. loads the flow (a bad reference or flow definition fails here, not in a call);
2. resolves every secret the worker will need through the secrets chain
   (``LIVEKIT_URL``, ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET``, and each tier's and
   the voice's API key) and exits with a message naming any that is missing;
3. builds an ``AgentServer``: prewarm loads Silero VAD and the flow once per job
   process; the load function reports active jobs (``active / max_jobs``, also the
   Prometheus gauge ``handoff_worker_active_jobs`` the HPA scales on); the health
   endpoints are handoff's (:mod:`handoff.health`: ``/live``, ``/ready`` only while
   registered with LiveKit, ``/worker``, on ``health_port``);
4. hands over to LiveKit's CLI (``livekit.agents.cli.run_app``) for ``dev`` or
   ``start``; ``console`` is :mod:`handoff.console`. On SIGTERM LiveKit drains: it
   stops taking jobs and waits up to ``drain_timeout`` seconds for calls to finish; a
   call still running then keeps its checkpoint (flushed when its job shuts down), and
   the next worker the call is dispatched to resumes it. A worker that cannot register
   with LiveKit (``HANDOFF_REGISTER_RETRIES`` attempts) exits 1 with the reason.

Metrics from every job process reach the worker's ``/metrics``: ``handoff run``
sets up prometheus-client's multiprocess mode (:mod:`handoff.telemetry.metrics`).
Plugins (Silero, OpenAI) are imported with this module, on the main thread, as
LiveKit requires.

Each job runs :func:`entrypoint`: an ``AgentSession`` with the process's VAD, the
flow's STT/TTS (:mod:`handoff.voice`) and the flow's tiers resolved through the
secrets chain, started in the job's room — or resumed where it was, when the call's
id (SIP call id, else room name) has a checkpoint (``HANDOFF_CHECKPOINT_STORE`` or
``HANDOFF_CHECKPOINT_DIR``; :mod:`handoff.persistence`, :mod:`handoff.resume`).
Transitions are traced and counted (:mod:`handoff.telemetry`), and each call's events
go to the event log next to the checkpoints (:mod:`handoff.events`) for ``handoff inspect``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

# plugins register themselves on import, which LiveKit allows on the main thread only:
# import them here, never first inside prewarm (console jobs run in a thread)
from livekit.plugins import openai, silero  # noqa: F401

from ._livekit import worker_connection_failed
from .context import sensitive_fields
from .errors import FlowDefinitionError, FlowError
from .events import EventLog, event_store_from_env
from .flowref import load_flow
from .persistence import Checkpointer, store_from_env
from .resume import call_id_of, resume_or_start
from .sealing import KEYS_SECRET, KeyringSealer
from .secrets import Secret, SecretChain
from .settings import StoreSettings, WorkerSettings
from .telemetry.metrics import MULTIPROC_ENV, worker_gauges
from .telemetry.observer import FlowTelemetry
from .telemetry.otel import configure_from_env as configure_tracing
from .telemetry.otel import flush_async as flush_spans
from .tiers import Tiers
from .validate import context_warnings
from .voice import VoiceConfig, Voices, VoiceSettings

if TYPE_CHECKING:
    from livekit.agents import AgentServer, JobContext, JobProcess

    from .flow import Flow
    from .plugins import Kind
    from .run import FlowRun

logger = logging.getLogger("handoff.worker")

FLOW_ENV = "HANDOFF_FLOW"
"""The flow reference (``module:attr``) job processes load; set by :func:`build_server`."""
CONNECTION_SECRETS = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")

ACTIVE_JOBS_METRIC = "handoff_worker_active_jobs"
"""The gauge the HPA scales on (deploy/k8s/base/hpa.yaml)."""


def required_secrets(flow: Flow[Any], voice: VoiceConfig | None = None,
                     *, connect: bool = True, models: bool = True) -> dict[str, str]:
    """The secret names a worker for ``flow`` needs before it takes a call, each with
    what needs it (for the error that names a missing one)."""
    needed: dict[str, str] = {}
    if connect:
        needed.update(dict.fromkeys(CONNECTION_SECRETS, "the LiveKit server connection"))
    used = {cls.tier for cls in flow.states.values()}
    for tier in sorted(used) if models else ():
        for name in (tier, *flow.tiers.configs[tier].fallbacks):
            cfg = flow.tiers.configs[name]
            if cfg.needs_key and cfg.api_key_env not in needed:
                what = f"tier {name!r} (LLM)" if name == tier else f"tier {name!r} (LLM, fallback)"
                needed[cfg.api_key_env] = what
    if voice is not None:
        kinds: tuple[tuple[Kind, str], ...] = (("stt", "speech-to-text"), ("tts", "text-to-speech"))
        for kind, what in kinds:
            key = voice.key_env(kind)
            if key and key not in needed:
                needed[key] = f"the voice ({what})"
            elif key and needed[key].startswith("the voice"):
                needed[key] = "the voice (speech-to-text and text-to-speech)"
    return needed


class ActiveJobsLoad:
    """``load_fnc`` of the AgentServer: active jobs ÷ max_jobs, published as gauges.

    LiveKit calls it twice a second on the worker's loop; the gauges are made on
    the first call, after LiveKit set up the metrics directory (see ``worker_gauges``).
    """

    def __init__(self, max_jobs: int) -> None:
        self.max_jobs = max_jobs
        self.last = 0.0

    def __call__(self, server: AgentServer) -> float:
        active = len(server.active_jobs)
        gauges = worker_gauges()
        gauges.max_jobs.set(self.max_jobs)
        gauges.active_jobs.set(active)
        self.last = min(1.0, active / self.max_jobs)
        return self.last


def startup_checks(settings: WorkerSettings, secrets: SecretChain, *, connect: bool = True,
                   voice: bool = True, models: bool = True
                   ) -> tuple[Flow[Any], dict[str, Secret]]:
    """The flow loads, its Context can be made without values (every call of a worker
    starts without one), and every secret it needs exists; raises naming what is wrong.

    ``connect``: LiveKit's URL and keys (not for console); ``voice``: the STT/TTS key
    (not for a text console); ``models``: each tier's key (not with a scripted LLM).
    """
    StoreSettings.load()  # a bad store setting fails here, not in the first call
    flow = load_flow(settings.flow)
    needs = context_warnings(flow)
    if needs:  # the worker starts every call without a Context: each would fail
        raise FlowDefinitionError(flow.name, [replace(f, severity="error") for f in needs])
    if settings.checkpoint_dir:
        os.environ["HANDOFF_CHECKPOINT_DIR"] = settings.checkpoint_dir
    needed = required_secrets(flow, VoiceSettings.load() if voice else None, connect=connect,
                              models=models)
    pii = sorted(sensitive_fields(flow.context_type))  # type: ignore[arg-type]
    if pii and checkpoints_configured():
        needed[KEYS_SECRET] = f"encrypting the checkpoints' pii fields ({', '.join(pii)}) at rest"
    found = secrets.require(needed)
    keys = found.get(KEYS_SECRET) or (secrets.get(KEYS_SECRET) if checkpoints_configured()
                                       else None)
    if keys is not None:  # a malformed key set fails here (a SealError), not in each call
        KeyringSealer.parse(keys.reveal())
    os.environ[FLOW_ENV] = settings.flow  # job processes inherit it
    return flow, found


def checkpoints_configured(environ: Mapping[str, str] | None = None) -> bool:
    return StoreSettings.load(environ).checkpoints_configured


def build_server(settings: WorkerSettings, secrets: SecretChain | None = None,
                 *, console: bool = False) -> AgentServer:
    """The AgentServer for a flow, after the start-up checks (flow loads, secrets exist).

    Outside console mode it carries a :class:`~handoff.health.WorkerHealth` on
    ``health_port`` (``server`` keeps LiveKit's own endpoint on a free port).
    """
    from livekit.agents import AgentServer

    from .health import WorkerHealth

    secrets = secrets or SecretChain.from_env()
    flow, found = startup_checks(settings, secrets, connect=not console)
    kwargs: dict[str, Any] = {}
    if settings.idle_processes is not None:
        kwargs["num_idle_processes"] = settings.idle_processes
    load = ActiveJobsLoad(settings.max_jobs)
    server = AgentServer(
        ws_url=found["LIVEKIT_URL"].reveal() if "LIVEKIT_URL" in found else None,
        api_key=found["LIVEKIT_API_KEY"].reveal() if "LIVEKIT_API_KEY" in found else None,
        api_secret=(found["LIVEKIT_API_SECRET"].reveal()
                    if "LIVEKIT_API_SECRET" in found else None),
        setup_fnc=ending_console_on_error(prewarm) if console else prewarm,
        load_fnc=load,
        load_threshold=settings.load_threshold,
        drain_timeout=settings.drain_timeout,
        port=0,  # LiveKit's endpoint answers OK before registering: handoff's serves the port
        prometheus_port=settings.metrics_port,
        prometheus_multiproc_dir=os.environ.get(MULTIPROC_ENV) or None,
        max_retry=settings.register_retries,
        **kwargs,
    )
    server.rtc_session(ending_console_on_error(entrypoint) if console else entrypoint,
                       agent_name=settings.agent_name)
    if not console:
        WorkerHealth(server, settings.health_port, load=load)
    logger.info("worker for flow %s ready (%d states); secrets from %s",
                flow.name, len(flow.states), ", ".join(secrets.describe()))
    return server


def ending_console_on_error(fn: Any) -> Any:
    """``fn`` (prewarm or the entrypoint) for LiveKit's voice console, where the job runs
    in a thread while the main thread waits for the session's audio forever: an error
    is logged in one line and ends the console (SIGTERM, which LiveKit's console handles)
    instead of leaving it waiting."""
    import functools
    import inspect
    import signal

    def _end(exc: BaseException) -> None:
        logger.error("console: %s failed: %s: %s", fn.__name__, type(exc).__name__, exc)
        signal.raise_signal(signal.SIGTERM)

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def guarded_async(*args: Any) -> Any:
            try:
                return await fn(*args)
            except Exception as exc:
                _end(exc)
        return guarded_async

    @functools.wraps(fn)
    def guarded(*args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            _end(exc)
    return guarded


# -- in the job processes ---------------------------------------------------------------
def prewarm(proc: JobProcess) -> None:
    """Once per job process, before any call: Silero VAD and the flow, loaded and kept."""
    started = time.perf_counter()
    configure_tracing()  # OTEL_* (the job process is not a fork of the one that read them)
    proc.userdata["vad"] = silero.VAD.load()
    proc.userdata["flow"] = flow = load_flow(os.environ[FLOW_ENV])
    proc.userdata["telemetry"] = FlowTelemetry().install(flow)  # spans and metrics per move
    logger.info("prewarmed pid %d: silero VAD and flow %s in %.2fs", os.getpid(),
                proc.userdata["flow"].name, time.perf_counter() - started)


async def entrypoint(ctx: JobContext) -> None:
    """One call: the flow's AgentSession in the job's room, resumed if checkpointed."""
    run = await start_call(ctx)
    events = record_call(ctx, run)

    async def _on_shutdown(reason: str) -> None:
        await end_call(run, reason, checkpointer=ctx.proc.userdata.get("checkpointer"),
                       events=events)

    ctx.add_shutdown_callback(_on_shutdown)
    logger.info("call %s started in state %s", run.call_id, run.state)


def record_call(ctx: JobContext, run: FlowRun[Any]) -> EventLog | None:
    """Record ``run``'s events in the job process's event log, if a store is configured
    (``HANDOFF_EVENT_STORE``, else next to the checkpoints); returns that log."""
    events = _process_event_log(ctx, run.flow)
    if events is not None:
        events.track(run, run.call_id or ctx.job.id, resumed=run.resuming)
    return events


STORE_FLUSH_BOUND = 2.0
"""Seconds the end of a call waits, at most, for each of its last checkpoints and events."""


async def end_call(run: FlowRun[Any], reason: str, *, checkpointer: Checkpointer | None = None,
                   events: EventLog | None = None) -> None:
    """What a job does once its call is over, before LiveKit releases it: the last
    checkpoints and events written (:data:`STORE_FLUSH_BOUND` each), then the call's
    spans sent (:data:`~handoff.telemetry.otel.FLUSH_BOUND`, however the collector behaves)."""
    logger.info("call %s ended in state %s (%s)", run.call_id, run.state, reason)
    if checkpointer is not None:  # the last checkpoints land before the process goes
        await checkpointer.flush(STORE_FLUSH_BOUND)
    if events is not None:  # LiveKit closes the session alongside: its last events first
        await events.wait_closed(run, STORE_FLUSH_BOUND)
        await events.flush(STORE_FLUSH_BOUND)
    await flush_spans()  # spans of the call reach the collector, or are left to the exporter


async def start_call(ctx: JobContext, secrets: SecretChain | None = None, *,
                     llm: Any = None, wait_opening: bool = False) -> FlowRun[Any]:
    """The flow's session for this job: prewarmed VAD, the flow's voice, tiers whose keys
    come from the secrets chain. A simulated call (fake job) runs text only, no room.

    ``llm`` replaces the tiers' models (the console's ``--script``); ``wait_opening``
    returns once the first agent's opening reply is done (``run.opening``).
    """
    from livekit.agents import AgentSession

    flow: Flow[Any] = ctx.proc.userdata.get("flow") or load_flow(os.environ[FLOW_ENV])
    secrets = secrets or SecretChain.from_env()
    if llm is None:
        # tier LLMs (and their HTTP clients) are made once per process and shared by its calls
        tiers = ctx.proc.userdata.get("tiers")
        if tiers is None:
            tiers = Tiers(flow.tiers.configs, source=flow.tiers.source, secrets=secrets)
            ctx.proc.userdata["tiers"] = tiers
        llm = tiers.models()  # made when a state needs one: a missing key ends no call
    session_kwargs: dict[str, Any] = {"vad": ctx.proc.userdata.get("vad")}
    start_kwargs: dict[str, Any] = {"wait_opening": wait_opening}
    if ctx.is_fake_job():
        logger.info("simulated call %s: text only, no room", ctx.job.id)
    else:
        voices = ctx.proc.userdata.get("voices")
        if voices is None:
            voices = ctx.proc.userdata["voices"] = Voices(VoiceSettings.load(), secrets=secrets)
        session_kwargs.update(voices.session_options())
        flow.agent_options = voices.agent_options  # per-state STT/TTS/turn overrides
        start_kwargs["room"] = ctx.room
    session: AgentSession[Any] = AgentSession(**session_kwargs)
    checkpointer = _process_checkpointer(ctx, flow, secrets)
    telemetry: FlowTelemetry | None = ctx.proc.userdata.get("telemetry")
    if checkpointer is None:
        run = await flow.start(session, llm=llm, call_id=ctx.job.id, **start_kwargs)
        if telemetry is not None:  # counted as an active run, as a resumable call is
            telemetry.track(run)
        return run
    # the call's key outlives the job: a redispatched call has a new job id, not a new room
    call_id = ctx.job.id if ctx.is_fake_job() else call_id_of(ctx.room)
    return await resume_or_start(flow, session, checkpointer=checkpointer, call_id=call_id,
                                 llm=llm, telemetry=telemetry, **start_kwargs)


def _process_checkpointer(ctx: JobContext, flow: Flow[Any],
                          secrets: SecretChain) -> Checkpointer | None:
    """The job process's Checkpointer (made on its first call), or None if not configured.

    Its pii section is sealed with ``HANDOFF_SEAL_KEYS`` when the secrets chain has it.
    """
    if "checkpointer" not in ctx.proc.userdata:
        store = store_from_env()
        sealer = KeyringSealer.from_secrets(secrets) if store is not None else None
        ctx.proc.userdata["checkpointer"] = (
            None if store is None else Checkpointer(store, sealer=sealer))
        if store is None:
            logger.warning("no HANDOFF_CHECKPOINT_STORE or HANDOFF_CHECKPOINT_DIR: calls of "
                           "flow %s will not survive this worker", flow.name)
    checkpointer: Checkpointer | None = ctx.proc.userdata["checkpointer"]
    return checkpointer


def _process_event_log(ctx: JobContext, flow: Flow[Any]) -> EventLog | None:
    """The job process's EventLog (made on its first call), or None if no store is set."""
    if "events" not in ctx.proc.userdata:
        store = event_store_from_env()
        ctx.proc.userdata["events"] = None if store is None else EventLog(store).install(flow)
    events: EventLog | None = ctx.proc.userdata["events"]
    return events


# -- the command ----------------------------------------------------------------------------
MODES = ("console", "dev", "start")


class RegistrationError(FlowError):
    """The worker gave up registering with LiveKit; the message is the one-line reason."""


def run_worker(settings: WorkerSettings, mode: str, livekit_args: Iterable[str] = (),
               *, simulate_calls: Iterable[str] = ()) -> None:
    """``handoff run … dev|start``: start-up checks, then LiveKit's CLI until the worker stops.

    (``console`` is :func:`handoff.console.run_console`.) Raises
    :class:`RegistrationError` when the worker never got registered with LiveKit.
    """
    if mode not in ("dev", "start"):
        raise ValueError(f"run_worker runs dev or start, not {mode!r}")
    server = build_server(settings)
    for room in simulate_calls:
        _simulate_call_on_start(server, room)
    errors = _ConnectionErrors()
    logging.getLogger("livekit.agents").addFilter(errors)
    try:
        run_livekit_cli(server, [mode, *livekit_args])
    finally:
        logging.getLogger("livekit.agents").removeFilter(errors)
    if worker_connection_failed(server):
        last = f" (last error: {errors.last})" if errors.last else ""
        raise RegistrationError(
            f"could not register with LiveKit at {server_url(server)} after "
            f"{settings.register_retries} attempts{last}")


def run_livekit_cli(server: AgentServer, args: list[str]) -> None:
    """LiveKit's own command line (``cli.run_app``) on ``server`` with ``args``."""
    import sys
    import warnings

    from livekit.agents import cli

    saved = sys.argv
    sys.argv = ["handoff run", *args]
    try:
        with warnings.catch_warnings():  # run_app warns that `lk agent` is the future CLI
            warnings.simplefilter("ignore", DeprecationWarning)
            cli.run_app(server)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise
    finally:
        sys.argv = saved


def server_url(server: AgentServer) -> str:
    """The LiveKit URL the worker dials (LiveKit puts it in the environment when it runs)."""
    return os.environ.get("LIVEKIT_URL", "") or "(no LIVEKIT_URL)"


class _ConnectionErrors(logging.Filter):
    """Keeps the last reason LiveKit logged for a failed connection attempt."""

    def __init__(self) -> None:
        super().__init__()
        self.last: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        error = getattr(record, "error", None)
        if error is not None and str(record.msg).startswith("failed to connect to livekit"):
            self.last = f"{type(error).__name__}: {error}"[:200]
        return True


def _simulate_call_on_start(server: AgentServer, room: str) -> None:
    """Start one simulated call (LiveKit's fake job: a job process, a mock room, no audio).

    For smoke tests of an image or a node: the prewarmed process runs the flow's
    session exactly as for a real call, minus the room's audio.
    """
    import asyncio

    tasks: set[asyncio.Task[None]] = set()

    def _start() -> None:
        task = asyncio.get_event_loop().create_task(server.simulate_job(room, fake_job=True))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server.once("worker_started", _start)
