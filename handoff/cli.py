"""The ``handoff`` command: talk to a flow, check it, draw it, run it as a worker."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from .errors import FlowDefinitionError
from .flowref import FlowLoadError, load_flow


class _Command(TyperCommand):
    """A subcommand whose usage line names its arguments as they are written
    (``handoff check [OPTIONS] MODULE:ATTRIBUTE``, not ``{flow_ref}``)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [p.removeprefix("{").removesuffix("}") for p in super().collect_usage_pieces(ctx)]


class _Handoff(typer.Typer):
    """The command; ``--inspect`` may come without its address (click options cannot).

    Help is plain text (no ``<bool>`` beside every flag, paragraphs reflowed), and every
    subcommand is a :class:`_Command`.
    """

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not args and kwargs.get("args") is None:
            kwargs["args"] = with_inspect_default(sys.argv[1:])
        return super().__call__(*args, **kwargs)


def with_inspect_default(args: list[str]) -> list[str]:
    """``args`` with a bare ``--inspect`` (last, or before another option) given its default."""
    from .inspector.server import DEFAULT_ADDRESS

    out = list(args)
    for i, arg in enumerate(out):
        if arg == "--inspect" and (i + 1 == len(out) or out[i + 1].startswith("-")):
            out[i] = f"--inspect={DEFAULT_ADDRESS}"
    return out


app = _Handoff(no_args_is_help=True, add_completion=False, rich_markup_mode=None,
               help="Multi-agent voice AI on LiveKit Agents, as a state machine.")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        from .extras import DISTRIBUTION

        try:
            typer.echo(f"{DISTRIBUTION} {version(DISTRIBUTION)}")
        except PackageNotFoundError:
            typer.echo(f"{DISTRIBUTION}: not installed (running from a source tree)")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool | None, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the installed version and exit.")
    ] = None,
) -> None:
    """handoff: multi-agent voice AI on LiveKit Agents, as a state machine."""


@app.command()
def chat(
    flow_ref: Annotated[str, typer.Argument(metavar="MODULE:ATTRIBUTE", help="The flow")],
    script: Annotated[
        str | None,
        typer.Option(help="MODULE:ATTRIBUTE of a ScriptedLLM reply list or policy, to chat offline"),
    ] = None,
    inspect_at: Annotated[str | None, typer.Option(
        "--inspect", help="serve the inspector while you chat, on [HOST:PORT] (127.0.0.1:8765)")
    ] = None,
) -> None:
    """Talk to a flow in the terminal, through a real AgentSession.

    A text conversation: each line you type is a caller turn; the agent's replies, its tool calls and every
    transition are printed as they happen. End with Ctrl-D.
    """
    inspector = _inspector(inspect_at, None) if inspect_at else None  # a bad bind fails first
    try:
        flow = load_flow(flow_ref)
    except (FlowLoadError, FlowDefinitionError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    llm: Any = None
    if script is not None:
        from .scripts import load_script

        try:
            llm = load_script(script)
        except (FlowLoadError, FlowDefinitionError) as exc:
            raise _fail(str(exc)) from exc
    else:
        missing = [t for t in {c.tier for c in flow.states.values()} if not flow.tiers.is_configured(t)]
        if missing:
            keys = sorted({flow.tiers.configs[t].api_key_env for t in missing})
            typer.echo(
                f"error: tiers {sorted(missing)} cannot reach a model: set {', '.join(keys)} (or "
                "the tier's api_key_env), point the tier's base_url at an OpenAI-compatible "
                "server, or pass --script MODULE:ATTR to chat with a scripted LLM",
                err=True,
            )
            raise typer.Exit(2)
    from .events import Recording

    try:  # the configured store (a bad setting is one line), or the inspector's
        recording = Recording(inspector.store) if inspector else Recording.configured()
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(_chat(flow, llm, recording, inspector))


def _inspector(address: str, store: Any = None) -> Any:
    """The InspectorServer for ``--inspect HOST:PORT`` over ``store`` (by default the
    configured event store, else the default SQLite file, so the call outlives the
    program); a bad address or an unsafe bind is one line on stderr and exit 2."""
    from .events import store_or_default
    from .inspector import InspectorServer, UnsafeBind, parse_address
    from .settings import InspectorSettings

    try:
        host, port = parse_address(address)
        return InspectorServer(store or store_or_default(), host=host, port=port,
                               token=InspectorSettings.load().token_value)
    except (UnsafeBind, ValueError) as exc:
        raise _fail(f"--inspect {address}: {exc}") from exc


async def _chat(flow: Any, llm: Any, recording: Any, inspector: Any = None) -> None:
    from .console import ScriptEnded, converse

    if inspector is not None:
        await _start(inspector)
    async with recording, flow.session(llm=llm) as run:
        call_id = recording.track(run, "chat")
        if inspector is not None:
            typer.echo(f"inspector: {inspector.link(f'/calls/{call_id}')}")
        if call_id is not None:
            typer.echo(f"events: call {call_id} in {recording.where}", err=True)
        try:
            await converse(run, typer.echo)
        except ScriptEnded as exc:
            typer.echo(f"error: {exc}", err=True)
            failed = True
        else:
            failed = False
        typer.echo(f"context: {run.context.model_dump_json()}")
    if inspector is not None:
        await inspector.stop()
    if failed:
        raise typer.Exit(1)


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
    from .secrets import SecretError
    from .worker import MODES, RegistrationError, WorkerSettings, run_worker

    if mode not in MODES:
        raise _fail(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if script is not None and mode != "console":
        raise _fail("--script is for console mode only")
    try:
        settings = WorkerSettings.from_env(
            flow_ref, max_jobs=max_jobs, drain_timeout=drain_timeout,
            health_port=health_port, metrics_port=metrics_port)
        if mode != "console" and settings.metrics_port is not None:
            from .secrets import SecretChain
            from .worker import startup_checks

            startup_checks(settings, SecretChain.from_env())  # a bad setup fails before re-exec
            _multiprocess_metrics()
        from .telemetry.otel import configure_from_env

        configure_from_env()
        inspector = _inspect_worker(inspect_at) if inspect_at else None
        if mode == "console":
            from .console import run_console

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

    from .telemetry.metrics import MULTIPROC_ENV, multiprocess_dir

    if os.environ.get(MULTIPROC_ENV):
        return
    if sys.argv[1:2] != ["run"]:  # not the `handoff run` process (an embedding, a test)
        logging.getLogger("handoff.cli").warning(
            "%s is not set: metrics of job processes will not reach /metrics", MULTIPROC_ENV)
        return
    os.environ[MULTIPROC_ENV] = multiprocess_dir()
    os.execv(sys.executable, [sys.executable, "-m", "handoff.cli", *sys.argv[1:]])


@app.command()
def inspect(
    store: Annotated[str | None, typer.Option(
        help="the event store: sqlite:///path/events.db or redis://host:port/db "
        "(default: HANDOFF_EVENT_STORE, else next to the checkpoints, else the file "
        "--inspect records to: ~/.local/state/handoff/events.db)")] = None,
    host: Annotated[str | None, typer.Option(
        help="address to listen on, default 127.0.0.1 (HANDOFF_INSPECT_HOST); not loopback "
        "needs --token")] = None,
    port: Annotated[int | None, typer.Option(
        help="port to listen on, default 8765 (HANDOFF_INSPECT_PORT; 0: any free port)")] = None,
    token: Annotated[str | None, typer.Option(
        help="required to read the inspector (HANDOFF_INSPECT_TOKEN)")] = None,
    stale_after: Annotated[float | None, typer.Option(
        help="seconds without a heartbeat after which a call's writer counts as stopped, "
        "default 15 (HANDOFF_INSPECT_STALE_AFTER)")] = None,
) -> None:
    """Watch live and recent calls in a browser (read-only).

    The flow with the active state lit, the timeline, the Context at each step, and
    replay of finished calls. Every option may also come from its variable or
    ``[tool.handoff.inspector]``."""
    from .events import open_event_store, store_or_default
    from .inspector import InspectorServer, UnsafeBind
    from .settings import InspectorSettings

    try:
        settings = InspectorSettings.load(host=host, port=port, token=token,
                                          stale_after=stale_after)
        events = open_event_store(store) if store else store_or_default()
        server = InspectorServer(events, host=settings.host, port=settings.port,
                                 token=settings.token_value, stale_after=settings.stale_after)
    except (UnsafeBind, ValueError) as exc:
        raise _fail(str(exc)) from exc
    asyncio.run(_serve(server))


async def _start(server: Any) -> str:
    try:
        url: str = await server.start()
    except OSError as exc:
        raise _fail(f"cannot listen on {server.host}:{server.port}: {exc.strerror or exc}") from exc
    return url


async def _serve(server: Any) -> None:
    typer.echo(f"handoff inspector on {await _start(server)}", err=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()
        await server.store.aclose()


def _inspect_worker(address: str) -> Any:
    """``run --inspect``: the calls (the console's, the job processes') are recorded in the
    configured event store, else in the default SQLite file; this process serves the
    inspector over it from a thread. Returns the running InspectorServer."""
    import os

    from .events import default_store_path, event_store_from_env, store_or_default

    store = event_store_from_env()
    if store is None:
        store = store_or_default()  # the default file
        path = default_store_path()
        os.environ["HANDOFF_EVENT_STORE"] = f"sqlite://{path}"  # job processes inherit it
        typer.echo(f"events: {path}", err=True)
    inspector = _inspector(address, store)
    try:
        url = inspector.start_in_thread()
    except OSError as exc:
        raise _fail(f"cannot listen on {address}: {exc.strerror or exc}") from exc
    typer.echo(f"inspector: {url}", err=True)
    return inspector


# -- check, diagram, diff ---------------------------------------------------------------
class CheckFormat(StrEnum):
    text = "text"
    json = "json"


class DiagramFormat(StrEnum):
    svg = "svg"
    png = "png"
    dot = "dot"
    mermaid = "mermaid"


class DiffFormat(StrEnum):
    svg = "svg"
    png = "png"
    dot = "dot"
    mermaid = "mermaid"
    markdown = "markdown"
    json = "json"


def _count(n: int, noun: str) -> str:
    """``1 transition``, ``2 transitions``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@app.command()
def check(
    flow_ref: Annotated[str, typer.Argument(metavar="MODULE:ATTRIBUTE", help="The flow")],
    strict: Annotated[bool, typer.Option(help="Count warnings as errors")] = False,
    fmt: Annotated[CheckFormat, typer.Option("--format", help="text, or json for CI")] = (
        CheckFormat.text),
    explore_depth: Annotated[int | None, typer.Option(
        "--explore", min=0, metavar="N",
        help="Also run every move sequence up to N moves against the oracle")] = None,
) -> None:
    """Validate a flow: errors and warnings, each with its fix.

    Warnings are unreachable states, dead ends and the like.

    Exit status 0 when there are no errors (warnings are printed: "0 errors, 2
    warnings"), 1 when there are errors (or warnings with --strict), 2 when the flow
    cannot be loaded. A module whose Flow(...) raises at import is
    loaded but malformed: its findings are printed and the status is 1. With
    ``--explore N`` a counterexample (the shortest) is printed and the status is 1.
    """
    from .validate import check as run_check

    loaded = True
    try:
        flow = load_flow(flow_ref)
        findings = run_check(flow, strict=strict)
        summary = f"{_count(len(flow.states), 'state')}, {_count(len(flow.edges), 'transition')}"
    except FlowLoadError as exc:
        if fmt is CheckFormat.json:
            typer.echo(json.dumps({"flow": flow_ref, "loaded": False, "error": str(exc)}))
        raise _fail(str(exc)) from exc
    except FlowDefinitionError as exc:
        loaded = False
        findings = list(exc.findings)
        summary = "Flow(...) raised FlowDefinitionError"
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    explored = _explore(flow, explore_depth) if loaded and explore_depth is not None else None
    if fmt is CheckFormat.json:
        typer.echo(json.dumps({
            "flow": flow_ref, "loaded": True, "built": loaded, "strict": strict, "errors": errors,
            "warnings": warnings, "findings": [f.to_dict() for f in findings],
            **({"explore": explored} if explored is not None else {}),
        }, indent=2))
    else:
        for finding in findings:
            typer.echo(str(finding))
        verdict = "ok" if not findings else f"{_count(errors, 'error')}, {_count(warnings, 'warning')}"
        typer.echo(f"{flow_ref}: {verdict} ({summary})")
        if explored is not None:
            typer.echo(explored["text"])
    failed = explored is not None and not explored["ok"]
    raise typer.Exit(1 if errors or failed else 0)


def _explore(flow: Any, depth: int) -> dict[str, Any]:
    """``handoff check --explore N``: the exhaustive exploration's summary."""
    try:
        from .testing.explore import explore
    except ModuleNotFoundError as exc:
        from .extras import missing

        raise _fail(str(missing("handoff check --explore", "testing", exc))) from exc

    runtime = logging.getLogger("handoff")
    level = runtime.level
    runtime.setLevel(logging.CRITICAL)  # the runs' own log lines (a loop's error transition
    try:                                # taken, a body that raised) are findings, or not
        result = explore(flow, depth=depth)
    finally:
        runtime.setLevel(level)
    return {"ok": result.ok, "depth": depth, "paths": result.paths, "steps": result.steps,
            "seconds": round(result.seconds, 3),
            "counterexample": [str(m) for m in result.counterexample or []],
            "problems": result.problems, "unreached": result.unreached,
            "ungenerated": result.ungenerated, "text": result.describe(with_rate=True)}


@app.command()
def diagram(
    flow_ref: Annotated[str, typer.Argument(
        metavar="MODULE:ATTRIBUTE|PACKAGE", help="One flow, or a package to draw every flow in")],
    fmt: Annotated[DiagramFormat, typer.Option("--format", "-f")] = DiagramFormat.svg,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="File (a directory for a package); default diagrams/NAME.EXT, "
        "or stdout for dot/mermaid of one flow")] = None,
    highlight: Annotated[str | None, typer.Option(help="Fill this state (the active one)")] = None,
    check_only: Annotated[bool, typer.Option(
        "--check", help="Write nothing; exit 1 if the kept source differs from the code")] = False,
) -> None:
    """Draw a flow as SVG/PNG (with its DOT source), DOT or Mermaid."""
    from . import diagram as draw
    from .flowref import flows_in_package

    suffix = draw.SUFFIX[fmt.value]
    try:
        if ":" in flow_ref:
            flow = load_flow(flow_ref)
            if output is None and not check_only and fmt.value in ("dot", "mermaid"):
                typer.echo(draw.source_for(flow, fmt.value, highlight=highlight)[0], nl=False)
                return
            targets = [(flow_ref, flow, output or Path("diagrams") / f"{flow.name}{suffix}")]
            folder = None
        else:
            if highlight is not None:
                raise _fail("--highlight needs one flow (MODULE:ATTRIBUTE), not a package")
            folder = output or Path("diagrams")
            found = flows_in_package(flow_ref)
            if not found:
                raise _fail(f"no Flow found in package {flow_ref!r}")
            names = [flow.name for _, flow in found]
            if len(set(names)) != len(names):
                raise _fail(f"two flows in {flow_ref!r} share a name: {sorted(names)}")
            targets = [(ref, flow, folder / f"{flow.name}{suffix}") for ref, flow in found]
    except (FlowLoadError, FlowDefinitionError) as exc:
        raise _fail(str(exc)) from exc
    except ValueError as exc:
        raise _fail(str(exc)) from exc

    try:
        if check_only:
            problems = [f"{ref}: {why}" for ref, flow, path in targets
                        if (why := draw.stale(flow, fmt.value, path, highlight=highlight))]
            if folder is not None:
                problems += _orphans(folder, {flow.name for _, flow, _ in targets})
            for problem in problems:
                typer.echo(problem)
            if problems:
                again = f"handoff diagram {flow_ref} -f {fmt.value}" + (
                    f" -o {output}" if output is not None else "")
                typer.echo(f"diagrams are stale: run `{again}`", err=True)
                raise typer.Exit(1)
            typer.echo(f"{_count(len(targets), 'diagram')} up to date")
            return
        for _, flow, path in targets:
            for written in draw.write(flow, fmt.value, path, highlight=highlight):
                typer.echo(f"wrote {written}")
    except (ValueError, draw.GraphvizMissing) as exc:
        raise _fail(str(exc)) from exc


def _orphans(folder: Path, names: set[str]) -> list[str]:
    """Generated sources in ``folder`` whose flow no longer exists."""
    out = []
    for path in sorted([*folder.glob("*.dot"), *folder.glob("*.mmd")]):
        head = path.read_text().split("\n", 1)[0]
        if "generated by handoff, do not edit" in head and path.stem not in names:
            out.append(f"{path}: no flow named {path.stem!r} any more; delete it")
    return out


@app.command()
def diff(
    old: Annotated[str, typer.Argument(
        metavar="OLD", help="[GITREV:]MODULE:ATTRIBUTE, e.g. main:pkg.flow:flow")],
    new: Annotated[str, typer.Argument(metavar="NEW", help="[GITREV:]MODULE:ATTRIBUTE")],
    fmt: Annotated[DiffFormat, typer.Option("--format", "-f")] = DiffFormat.markdown,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="File to write; stdout for markdown/mermaid/dot if absent")] = None,
    exit_code: Annotated[bool, typer.Option(
        "--exit-code", help="Exit 1 when the change breaks calls in flight: it needs a "
        "migration the new version does not declare")] = False,
) -> None:
    """Compare two versions of a flow, judged for calls in flight.

    A diagram, a PR table (with each change judged for calls checkpointed by the old
    version: safe, tightens, needs a migration, and the migration to write) or JSON.
    A side written GITREV:MODULE:ATTRIBUTE is loaded from that git revision in a
    separate process; the working tree is not touched.
    """
    from .diagram import GraphvizMissing, render
    from .diagram_diff import compare, diff_dot, diff_markdown, diff_mermaid
    from .diff_effect import check_by_resuming
    from .flowref import load_snapshot, parse_ref
    from .inflight import assess, inflight_json, inflight_markdown

    try:
        changes = compare(load_snapshot(old), load_snapshot(new),
                          labels=(_side_label(old, new), _side_label(new, old)))
        # the new side loaded here: its verdicts come from resuming the old one's checkpoints
        live = None if parse_ref(new, allow_rev=True).rev is not None else load_flow(new)
    except (FlowLoadError, FlowDefinitionError) as exc:
        raise _fail(str(exc)) from exc
    in_flight = assess(changes)
    if live is not None:
        check_by_resuming(in_flight, live)
    data: Any
    if fmt is DiffFormat.markdown:
        data = diff_markdown(changes) + "\n" + inflight_markdown(in_flight)
    elif fmt is DiffFormat.json:
        data = json.dumps(inflight_json(in_flight), indent=2) + "\n"
    elif fmt is DiffFormat.mermaid:
        data = diff_mermaid(changes)
    elif fmt is DiffFormat.dot:
        data = diff_dot(changes).source
    else:
        if output is None:
            raise _fail(f"-f {fmt.value} needs -o PATH")
        try:
            data = render(diff_dot(changes), fmt.value)
        except GraphvizMissing as exc:
            raise _fail(str(exc)) from exc
    if output is None:
        typer.echo(data, nl=False)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            output.write_bytes(data)
        else:
            output.write_text(data)
        typer.echo(f"wrote {output}")
    raise typer.Exit(1 if exit_code and in_flight.breaking else 0)


def _side_label(ref: str, other: str) -> str:
    """``main`` for ``main:pkg.flow:flow``, ``working tree`` for ``pkg.flow:flow``; the
    whole reference when the two sides name different modules."""
    rev = ref.split(":")[0] if ref.count(":") == 2 else None
    if ref.split(":")[-2:] != other.split(":")[-2:]:
        return ref
    return rev or "working tree"


# -- migrate -----------------------------------------------------------------------------
class ReportFormat(StrEnum):
    text = "text"
    json = "json"


@app.command()
def migrate(
    flow_ref: Annotated[str, typer.Argument(metavar="MODULE:ATTRIBUTE",
                                            help="The flow (its new version)")],
    store: Annotated[str | None, typer.Option(
        help="sqlite:///path/to/checkpoints.db or redis://host:port/db "
        "(default: HANDOFF_CHECKPOINT_STORE)")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Report what would move and what fails; write nothing")] = False,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="text, or json")] = (
        ReportFormat.text),
    recover: Annotated[bool, typer.Option(
        "--recover", help="First put back the checkpoints workers set aside because they "
        "could not open them (a lost seal key now restored)")] = False,
    allow_loss: Annotated[bool, typer.Option(
        "--allow-loss", help="Exit 0 even when stored calls would lose their state or a "
        "field on resuming (no migration reads their version)")] = False,
) -> None:
    """Migrate every stored checkpoint of a flow to its version.

    Through the flow's migrations. Reports, per stored version, how many calls move
    from which state to which and which fail. Each call is replaced atomically, only if no worker wrote it
    meanwhile; a checkpoint that cannot be migrated is kept as it was, marked with
    the reason. Every other stored call that would lose its state, a Context field or
    a return state when it resumes is listed. Sealed checkpoints are opened with
    HANDOFF_SEAL_KEYS from the secrets chain the worker uses, and re-sealed with its
    first key. Exit 0 when nothing failed and no call would lose anything (or
    --allow-loss), 1 otherwise (a checkpoint that cannot be opened counts), 2 on bad input.
    """
    from .sealing import KeyringSealer
    from .secrets import SecretChain, SecretError
    from .settings import StoreSettings

    try:
        flow = load_flow(flow_ref)
        sealer = KeyringSealer.from_secrets(SecretChain.from_env())
        url = store or StoreSettings.load().checkpoint_store
    except (FlowLoadError, FlowDefinitionError, SecretError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    if not url:
        raise _fail("--store URL is required (or set HANDOFF_CHECKPOINT_STORE)")
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite://")).is_file():
        raise _fail(f"{url}: no such SQLite file")
    report = asyncio.run(_migrate(flow, url, dry_run, sealer, recover))
    if fmt is ReportFormat.json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(report.text(), nl=False)
    raise typer.Exit(1 if report.failed or report.unreadable or (
        report.losing and not allow_loss) else 0)


async def _migrate(flow: Any, url: str, dry_run: bool, sealer: Any, recover: bool) -> Any:
    import sqlite3

    from .persistence import store_from_url
    from .persistence.recover import recover_store
    from .persistence.store_migration import migrate_store

    try:
        store = store_from_url(url)
    except (ValueError, ImportError) as exc:
        raise _fail(str(exc)) from exc
    unreachable: tuple[type[BaseException], ...] = (OSError, sqlite3.Error)
    try:
        from redis.exceptions import RedisError

        unreachable += (RedisError,)
    except ImportError:  # pragma: no cover - the redis extra is not installed
        pass
    try:
        recovery = (await recover_store(flow, store, sealer=sealer, dry_run=dry_run)
                    if recover else None)
        report = await migrate_store(flow, store, dry_run=dry_run, sealer=sealer)
        report.recovery = recovery
        return report
    except unreachable as exc:
        raise _fail(f"cannot read the store {url}: {type(exc).__name__}: {exc}") from exc
    finally:
        await store.aclose()


@app.command()
def new(
    name: Annotated[str, typer.Argument(metavar="NAME",
                                        help="the project (and its package, with _ for -)")],
    directory: Annotated[Path, typer.Option("--dir", help="where to create it")] = Path("."),
) -> None:
    """Start a project whose tests pass at once, offline.

    A two-state flow, its tests and coverage gate, handoff.toml, a Dockerfile,
    Kubernetes manifests and a CI script."""
    from .scaffold import ScaffoldError, create

    try:
        root, written = create(name, directory)
    except ScaffoldError as exc:
        raise _fail(str(exc)) from exc
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(f"next: cd {root} && python -m pip install -e '.[test]' && python -m pytest")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
