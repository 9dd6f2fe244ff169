"""The first hour with the ``handoff`` command: what it prints is short, right and consistent.

``--version``; help without type tags beside every flag or ``{argument}`` placeholders, and
command summaries that are whole sentences; a caller line past a chat script is one line,
not a traceback; ``run console`` without a key names ``--script``; ``check`` says how many
errors and warnings in words that agree with its exit status; plural forms.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from handoff.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "HANDOFF_", "LIVEKIT_"))}
    return {**env, "PYTHONPATH": os.pathsep.join([str(ROOT), *extra.pop("path", "").split(":")]),
            **extra}


def test_version_names_the_distribution() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"livekit-handoff {version('livekit-handoff')}\n"


@pytest.mark.parametrize("command", [None, *sorted(get_command(app).commands)])  # type: ignore[attr-defined]
def test_help_has_no_type_tags_on_flags_nor_placeholders(command: str | None) -> None:
    result = runner.invoke(app, [command, "--help"] if command else ["--help"], prog_name="handoff")
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    usage = result.output.splitlines()[0]
    assert "{" not in usage and "}" not in usage, usage
    assert usage.split()[:2] == ["Usage:", "handoff"]


def test_each_command_summary_is_one_whole_sentence() -> None:
    group = get_command(app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        summary = command.get_short_help_str(limit=70)
        assert summary.endswith(".") and not summary.endswith("..."), f"{name}: {summary!r}"
    listing = runner.invoke(app, ["--help"]).output
    assert "..." not in listing.split("Commands:")[1], listing


def test_check_says_errors_and_warnings_as_its_exit_status_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "polish_flows.py").write_text(textwrap.dedent("""
        from tests.flowgen import make_flow
        lost = make_flow({"A": [("go", "B")], "B": [], "Lost": [("x", "B")]},
                         initial="A", final=["B"])
        one = make_flow({"A": [("go", "B")], "B": []}, initial="A", final=["B"])
    """))
    warned = runner.invoke(app, ["check", "polish_flows:lost"])
    assert warned.exit_code == 0, warned.output
    assert warned.output.splitlines()[-1] == \
        "polish_flows:lost: 0 errors, 1 warning (3 states, 2 transitions)"
    strict = runner.invoke(app, ["check", "polish_flows:lost", "--strict"])
    assert strict.exit_code == 1
    assert strict.output.splitlines()[-1] == \
        "polish_flows:lost: 1 error, 0 warnings (3 states, 2 transitions)"
    clean = runner.invoke(app, ["check", "polish_flows:one"])
    assert clean.exit_code == 0 and clean.output == "polish_flows:one: ok (2 states, 1 transition)\n"
    readme = (ROOT / "README.md").read_text()
    assert "exit 0 with no errors (warnings are printed: `0 errors, 1 warning`" in readme


@pytest.mark.parametrize("command", [["chat", "examples.readme.hello:flow"],
                                     ["run", "examples.readme.hello:flow", "console", "--text"]],
                         ids=["chat", "run console"])
def test_a_caller_line_past_the_script_is_one_line(command: list[str], tmp_path: Path) -> None:
    (tmp_path / "short_script.py").write_text('replies = ["Hi! Who\'s calling?"]\n')
    chat = subprocess.run(
        [sys.executable, "-m", "handoff.cli", *command, "--script", "short_script:replies"],
        input="I'm Ann\nstill there?\n", cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env=_env(path=str(tmp_path), HANDOFF_SECRETS="env"))
    assert chat.returncode == 1, chat.stdout + chat.stderr
    assert chat.stderr.splitlines()[-1] == (
        "error: the script has no reply left for the caller's line \"I'm Ann\": "
        "the scripted conversation is over")
    assert "Traceback" not in chat.stdout + chat.stderr
    assert "agent: Hi! Who's calling?" in chat.stdout


def test_run_console_without_a_key_names_the_script_option(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "handoff.cli", "run", "examples.readme.hello:flow", "console",
         "--text"], input="", cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env=_env(HANDOFF_SECRETS="env"))
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("error: missing secret: OPENAI_API_KEY")
    assert line.endswith("or pass --script MODULE:ATTRIBUTE to talk to a scripted LLM offline")


APT_SAYS = {
    "busy": "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)\n"
            "E: Unable to lock directory /var/lib/apt/lists/",
    "not root": "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)\n"
                "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?",
}


@pytest.mark.parametrize("situation", sorted(APT_SAYS))
def test_make_apt_tells_a_busy_apt_from_a_missing_root(situation: str, tmp_path: Path) -> None:
    fake = tmp_path / "apt-get"  # apt as it answers in that situation
    fake.write_text(f"#!/bin/sh\ncat >&2 <<'END'\n{APT_SAYS[situation]}\nEND\nexit 100\n")
    fake.chmod(0o755)
    done = subprocess.run(
        ["make", "-s", "--no-print-directory", "apt", "APT_PACKAGES=handoff-test-no-such-package",
         "APT_WAIT=0"], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "APT_GET": str(fake)})
    assert done.returncode != 0
    said = done.stdout.splitlines()
    assert said[0] == "installing Debian packages: handoff-test-no-such-package"
    if situation == "busy":
        assert said[1].startswith("apt is busy: another apt or dpkg held its lock for 0s")
    else:
        assert said[1] == ("could not install handoff-test-no-such-package: need root "
                           "(sudo apt-get install handoff-test-no-such-package)")
    assert len(said) == 2
