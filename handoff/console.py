"""``handoff run MODULE:flow console``: talk to the worker's flow in a terminal.

Voice, where the machine has PortAudio and an audio device: LiveKit's own console
(``cli.run_app`` in ``console`` mode, the job in a thread of this process). Text
otherwise, or with ``--text``: the worker's job path — :func:`handoff.worker.start_call`
in a LiveKit fake job context, tiers from the secrets chain, checkpoints and
telemetry as configured — on the main thread, reading caller lines from stdin, with
no audio library at all. Either way every transition is printed as it happens.

Nothing here waits forever: the reader is a daemon thread, Ctrl-C or Ctrl-D ends
the call, and an error while starting the call ends the console with one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import ScriptExhausted

if TYPE_CHECKING:
    from livekit.agents import RunResult

    from .run import FlowRun
    from .settings import WorkerSettings

VOICE_HINT = ("for voice, install PortAudio (Debian: apt-get install libportaudio2) on a "
              "machine with a microphone and speakers")


def audio_unavailable() -> str | None:
    """Why a voice console cannot run here (no PortAudio, no device), or None."""
    try:
        import sounddevice as sd  # livekit-agents' console audio; needs the PortAudio library
    except OSError as exc:  # sounddevice raises OSError('PortAudio library not found')
        return str(exc)
    except ImportError:
        return "the sounddevice package is not installed"
    try:
        sd.query_devices(kind="input")
        sd.query_devices(kind="output")
    except Exception as exc:  # sounddevice.PortAudioError: no default device
        return f"no audio device: {exc}"
    return None


def run_console(settings: WorkerSettings, args: list[str], *, script: str | None = None,
                call_link: Callable[[str], str] | None = None) -> None:
    """The console in voice when possible, else text (saying why on stderr).

    Its call is recorded in the configured event store (``HANDOFF_EVENT_STORE``, else
    next to the checkpoints), as a worker's are; ``call_link`` (of an inspector serving
    that store, ``run … console --inspect``) makes the URL of a path, printed for the call.
    """
    text = "--text" in args
    reason = None if text or script else audio_unavailable()
    if not text and not script and reason is None:
        from .worker import build_server, run_livekit_cli

        run_livekit_cli(build_server(settings, console=True), ["console", *args])
        return
    rest = [a for a in args if a != "--text"]
    if rest:
        raise ValueError(f"the text console takes no LiveKit options: {' '.join(rest)}")
    if reason is not None:
        print(f"text console: {reason}; {VOICE_HINT}", file=sys.stderr)
    llm = None
    if script is not None:
        from .scripts import load_script

        llm = load_script(script)
        print(f"text console: the agent is the scripted LLM {script}", file=sys.stderr)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("livekit").setLevel(logging.ERROR)  # its audio-pipeline advice is moot
    code = asyncio.run(_text_console(settings, llm, call_link))
    if code:
        raise SystemExit(code)


async def _text_console(settings: WorkerSettings, llm: Any,
                        call_link: Callable[[str], str] | None) -> int:
    from livekit.agents.testing import fake_job_context

    from .events.recording import describe, new_call_id
    from .secrets import SecretChain
    from .telemetry.observer import FlowTelemetry
    from .worker import end_call, record_call, start_call, startup_checks

    secrets = SecretChain.from_env()
    flow, _ = startup_checks(settings, secrets, connect=False, voice=False, models=llm is None)
    # each console is a new call (its own checkpoint key and event log)
    with fake_job_context(job_id=new_call_id("console")) as ctx:
        ctx.proc.userdata["flow"] = flow
        ctx.proc.userdata["telemetry"] = FlowTelemetry().install(flow)
        try:
            run = await start_call(ctx, secrets, llm=llm, wait_opening=True)
            events = record_call(ctx, run)
        except Exception as exc:  # the call could not start: say why in one line, end
            print(f"error: the call did not start: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        if events is not None:
            print(f"events: call {run.call_id} in {describe(events.store)}", file=sys.stderr)
            if call_link is not None:
                print(f"inspector: {call_link(f'/calls/{run.call_id}')}", file=sys.stderr)
        try:
            await converse(run, print)
        except KeyboardInterrupt:
            return 130
        except ScriptEnded as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(run.session.aclose(), 10)
            await end_call(run, "console closed",
                           checkpointer=ctx.proc.userdata.get("checkpointer"), events=events)
            if events is not None:
                await events.aclose(2.0)
    return 0


async def converse(run: FlowRun[Any], echo: Callable[[str], Any]) -> None:
    """Caller lines from stdin to ``run``'s session until end of input; each turn printed."""
    from .transcript import TranscriptPrinter

    printer = TranscriptPrinter(run)
    echo(f"[{run.state}]")
    if run.opening is not None:
        echo("\n".join(printer.lines(run.opening)))
    reader = _StdinReader()
    quiet = _QuietScriptEnd()
    logging.getLogger("livekit.agents").addFilter(quiet)
    try:
        while True:
            line = await reader.next_line()
            if line is None:
                break
            if not line.strip():
                continue
            try:
                result: RunResult[Any] = await run.session.run(user_input=line)
            except AssertionError as exc:
                if not _script_ended(exc):
                    raise
                raise ScriptEnded(f"the script has no reply left for the caller's line {line!r}: "
                                  "the scripted conversation is over") from exc
            echo("\n".join(printer.lines(result)))
            echo(f"[{run.state}]")
    finally:
        logging.getLogger("livekit.agents").removeFilter(quiet)


class ScriptEnded(Exception):
    """A caller line came after the last reply of a scripted LLM's script (one line to show)."""


def _script_ended(exc: BaseException | None) -> bool:
    return isinstance(exc, ScriptExhausted)  # the scripted LLM is the only one that ends


class _QuietScriptEnd(logging.Filter):
    """Drops LiveKit's traceback of a script's end: ``converse`` says it in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and _script_ended(record.exc_info[1]))


class _StdinReader:
    """Reads one stdin line per request in a daemon thread (never keeps the process alive,
    so Ctrl-C while a line is awaited cannot hang the exit)."""

    def __init__(self) -> None:
        self._wanted: queue.SimpleQueue[asyncio.Future[str | None]] = queue.SimpleQueue()
        threading.Thread(target=self._read, name="handoff-console-stdin", daemon=True).start()

    async def next_line(self) -> str | None:
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._wanted.put(future)
        return await future

    def _read(self) -> None:
        while True:
            future = self._wanted.get()
            sys.stdout.write("caller> ")
            sys.stdout.flush()
            line = sys.stdin.readline()
            value = None if line == "" else line.rstrip("\n")
            future.get_loop().call_soon_threadsafe(_resolve, future, value)
            if value is None:
                return


def _resolve(future: asyncio.Future[str | None], value: str | None) -> None:
    if not future.done():
        future.set_result(value)
