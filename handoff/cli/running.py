"""``handoff run``: the flow as a LiveKit voice worker (``console``, ``dev`` or ``start``)."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from ..errors import FlowDefinitionError
from ..flowref import FlowLoadError
from .root import _fail, app
from .serving import _inspect_worker


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    flow_ref: Annotated[str, typer.Argument(metavar="MODULE:ATTRIBUTE", help="The flow")],
    mode: Annotated[str, typer.Argument(metavar="MODE", help="console | dev | start")],
    max_jobs: Annotated[int | None, typer.Option(help="calls per worker (HANDOFF_MAX_JOBS)")] = None,
    drain_timeout: Annotated[
        int | None, typer.Option(help="seconds calls get after SIGTERM (HANDOFF_DRAIN_TIMEOUT)")
    ] = None,
    health_port: Annotated[int | None, typer.Option(help="health endpoint port")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus /metrics port")] = None,
    simulate_call: Annotated[
        list[str] | None,
        typer.Option(help="start a simulated call (no audio) in this room name; repeatable"),
    ] = None,
    script: Annotated[
        str | None,
        typer.Option(help="console: MODULE:ATTRIBUTE of a ScriptedLLM reply list, to talk offline"),
    ] = None,
    inspect_at: Annotated[str | None, typer.Option(
        "--inspect", help="serve the inspector over this worker's calls on [HOST:PORT]")] = None,
) -> None:
    """Run the flow as a LiveKit voice worker (one job per room).

    Secrets (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET, model keys) come from the
    secrets chain: environment, HANDOFF_SECRETS_DIR files, Vault. Further options go to
    LiveKit's own command (e.g. ``--log-level``, ``console --text``). ``console`` talks
    in text when the machine has no audio device. Tracing follows the OTEL_* variables.
    """
    from ..secrets import SecretError
    from ..worker import MODES, RegistrationError, WorkerSettings, run_worker

    if mode not in MODES:
        raise _fail(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if script is not None and mode != "console":
        raise _fail("--script is for console mode only")
    try:
        settings = WorkerSettings.from_env(
            flow_ref, max_jobs=max_jobs, drain_timeout=drain_timeout,
            health_port=health_port, metrics_port=metrics_port)
        if mode != "console" and settings.metrics_port is not None:
            from ..secrets import SecretChain
            from ..worker import startup_checks

            startup_checks(settings, SecretChain.from_env())  # a bad setup fails before re-exec
            _multiprocess_metrics()
        from ..telemetry.otel import configure_from_env

        configure_from_env()
        inspector = _inspect_worker(inspect_at) if inspect_at else None
        if mode == "console":
            from ..console import run_console

            run_console(settings, ctx.args, script=script,
                        call_link=None if inspector is None else inspector.link)
        else:
            run_worker(settings, mode, ctx.args, simulate_calls=simulate_call or ())
    except RegistrationError as exc:
        raise _fail(str(exc), code=1) from exc
    except SecretError as exc:
        offline = ("; or pass --script MODULE:ATTRIBUTE to talk to a scripted LLM offline"
                   if mode == "console" and script is None else "")
        raise _fail(f"{exc}{offline}") from exc
    except (FlowLoadError, FlowDefinitionError, ValueError) as exc:
        raise _fail(str(exc)) from exc


def _multiprocess_metrics() -> None:
    """Re-run this command with ``PROMETHEUS_MULTIPROC_DIR`` set, unless it is set already.

    prometheus-client picks single- or multi-process metrics when first imported
    (handoff imports it with LiveKit), so the variable must be in the environment
    before the process starts: job processes then write their metrics to files
    the worker's ``/metrics`` adds up.
    """
    import os

    from ..telemetry.metrics import MULTIPROC_ENV, multiprocess_dir

    if os.environ.get(MULTIPROC_ENV):
        return
    if sys.argv[1:2] != ["run"]:  # not the `handoff run` process (an embedding, a test)
        logging.getLogger("handoff.cli").warning(
            "%s is not set: metrics of job processes will not reach /metrics", MULTIPROC_ENV)
        return
    os.environ[MULTIPROC_ENV] = multiprocess_dir()
    os.execv(sys.executable, [sys.executable, "-m", "handoff.cli", *sys.argv[1:]])
