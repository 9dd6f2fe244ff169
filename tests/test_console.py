"""``handoff run MODULE:flow console`` in a real terminal (tmux), as a user runs it.

Each test starts the command in its own tmux server (a private socket), types lines
with ``send-keys`` and reads the screen with ``capture-pane``. There is no audio device
and no PortAudio in CI: the console says so and talks in text, through the worker's job
path (a LiveKit fake job context, the flow's real AgentSession) with a scripted LLM.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from handoff.console import audio_unavailable

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

SCRIPT = textwrap.dedent('''
    from handoff.testing import call

    replies = ["Hi! Who's calling?", call("caller_identified", name="Ann"), "How can I help, Ann?"]
    not_a_list = 42
''')

BROKEN_FLOW = textwrap.dedent('''
    from handoff import Context, Flow, State


    class Call(Context):
        pass


    class Start(State[Call]):
        """Fails as soon as the call starts."""

        instructions = "Fail."

        async def on_enter(self) -> None:
            raise RuntimeError("the greeting service is down")


    flow = Flow("broken", context=Call, initial=Start, states=[Start], final=[Start])
''')


class Terminal:
    """One command in a tmux window: type lines, read the screen."""

    def __init__(self, socket: str, cwd: Path) -> None:
        self.socket = socket
        self.cwd = cwd

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, check=True).stdout

    def start(self, command: list[str], env: dict[str, str]) -> None:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        line = (f"cd {shlex.quote(str(self.cwd))} && env -i {exports} {shlex.join(command)}; "
                "echo EXIT=$?; sleep 600")
        self.tmux("new-session", "-d", "-s", "t", "-x", "160", "-y", "50", line)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", "t")

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "t", "-l", text)
        self.tmux("send-keys", "-t", "t", "Enter")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def wait_for(self, text: str, timeout: float = 120) -> str:
        """The screen once it shows ``text`` (fails with the screen after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        pytest.fail(f"the screen never showed {text!r}:\n{self.screen()}")


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    (tmp_path / "hello_script.py").write_text(SCRIPT)
    (tmp_path / "brokenflow.py").write_text(BROKEN_FLOW)
    term = Terminal(f"handoff-test-{os.getpid()}-{tmp_path.name}", tmp_path)
    yield term
    subprocess.run(["tmux", "-L", term.socket, "kill-server"], capture_output=True)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "TERM": "xterm", "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)]),
           "HANDOFF_SECRETS": "env"}
    env.update(extra)
    return env


def _console(flow: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "handoff.cli", "run", flow, "console", *args]


def test_text_console_talks_through_the_flow_and_prints_each_transition(
    terminal: Terminal, tmp_path: Path
) -> None:
    terminal.start(_console("examples.readme.hello:flow", "--script", "hello_script:replies"),
                   _env(tmp_path))
    screen = terminal.wait_for("caller> ")
    assert "text console: the agent is the scripted LLM hello_script:replies" in screen
    assert "[Greeter]" in screen and "agent: Hi! Who's calling?" in screen
    assert "Traceback" not in screen
    terminal.type("I'm Ann")
    screen = terminal.wait_for("[Helper]")
    assert "caller_identified" in screen
    assert "Greeter → Helper by caller_identified {'name': 'Ann'}" in screen
    assert "agent: How can I help, Ann?" in screen
    terminal.keys("C-d")  # end of input ends the call
    screen = terminal.wait_for("EXIT=")
    assert "EXIT=0" in screen and "Traceback" not in screen


def test_console_without_audio_says_so_and_falls_back_to_text(
    terminal: Terminal, tmp_path: Path
) -> None:
    """No --text, no --script: a voice console is asked for. Without PortAudio or an
    audio device it says why and talks in text (here through the tier's model, whose
    key is missing: the error names the key and what needs it, and nothing hangs)."""
    reason = audio_unavailable()
    if reason is None:
        pytest.skip("this machine has PortAudio and an audio device: the console uses voice")
    terminal.start(_console("examples.readme.hello:flow"), _env(tmp_path))
    screen = terminal.wait_for("EXIT=")
    assert f"text console: {reason}" in screen and "libportaudio2" in screen
    assert "missing secret: OPENAI_API_KEY (for tier 'fast' (LLM))" in screen
    assert "EXIT=2" in screen and "Traceback" not in screen


def test_a_hook_that_raises_is_reported_and_the_call_goes_on(
    terminal: Terminal, tmp_path: Path
) -> None:
    """A State's on_enter raising is a failure of the call (DESIGN invariant 5), not of
    the console: it is logged, the agent still answers, Ctrl-D still ends it."""
    terminal.start(_console("brokenflow:flow", "--text", "--script", "hello_script:replies"),
                   _env(tmp_path))
    screen = terminal.wait_for("caller> ")
    assert "Start.on_enter raised" in screen and "the greeting service is down" in screen
    terminal.keys("C-d")
    assert "EXIT=0" in terminal.wait_for("EXIT=")


def test_a_call_that_cannot_start_ends_the_console_with_one_line(
    terminal: Terminal, tmp_path: Path
) -> None:
    (tmp_path / "not-a-folder").write_text("")  # (a bad store URL is refused before: exit 2)
    terminal.start(_console("examples.readme.hello:flow", "--script", "hello_script:replies"),
                   _env(tmp_path, HANDOFF_CHECKPOINT_DIR=str(tmp_path / "not-a-folder")))
    screen = terminal.wait_for("EXIT=")
    assert "error: the call did not start: FileExistsError: " in screen
    assert "EXIT=1" in screen and "Traceback" not in screen


def test_ctrl_c_while_waiting_for_the_caller_exits_without_hanging(
    terminal: Terminal, tmp_path: Path
) -> None:
    terminal.start(_console("examples.readme.hello:flow", "--script", "hello_script:replies"),
                   _env(tmp_path))
    terminal.wait_for("caller> ")
    terminal.keys("C-c")
    screen = terminal.wait_for("EXIT=", timeout=30)
    assert "EXIT=130" in screen


@pytest.mark.parametrize(("script", "message"), [
    ("hello_script.replies", "is not MODULE:ATTRIBUTE"),
    ("no_such_module:replies", "cannot import 'no_such_module'"),
    ("hello_script:nope", "module 'hello_script' has no attribute 'nope'"),
    ("hello_script:not_a_list", "is a int: expected a list of replies"),
])
def test_a_bad_script_reference_is_one_line_and_exit_2(
    tmp_path: Path, script: str, message: str
) -> None:
    (tmp_path / "hello_script.py").write_text(SCRIPT)
    commands = [["chat", "examples.readme.hello:flow", "--script", script]]
    if script == "hello_script:nope":  # the console loads scripts the same way: one case
        commands.append(["run", "examples.readme.hello:flow", "console", "--script", script])
    for command in commands:
        proc = subprocess.run([sys.executable, "-m", "handoff.cli", *command], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120, env=_env(tmp_path))
        assert proc.returncode == 2, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and message in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr


async def test_an_error_in_the_voice_consoles_job_ends_the_console() -> None:
    """LiveKit's voice console waits on its main thread for the job's audio; a prewarm or
    entrypoint that raises must end it (SIGTERM, which that console handles), not leave it
    waiting. Checked with a SIGTERM handler of the test's own."""
    import signal

    from handoff.worker import ending_console_on_error

    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda sig, _frame: received.append(sig))
    try:
        def prewarm(_proc: object) -> None:
            raise RuntimeError("no model file")

        async def entrypoint(_ctx: object) -> None:
            raise RuntimeError("no room")

        async def fine(_ctx: object) -> str:
            return "ok"

        ending_console_on_error(prewarm)(object())
        await ending_console_on_error(entrypoint)(object())
        assert received == [signal.SIGTERM, signal.SIGTERM]
        assert await ending_console_on_error(fine)(object()) == "ok"
        assert received == [signal.SIGTERM, signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
