"""``handoff/cli/`` is a package of one module per command: what its users rely on stays put.

The commands register on the app as their modules are imported, so the package's
``__init__`` decides the order ``handoff --help`` lists them in; ``python -m handoff.cli``
(used by the worker's metrics re-exec, the Makefile and many tests) and the console
script's ``handoff.cli:app`` keep working.
"""

from __future__ import annotations

import subprocess
import sys

from typer.main import get_command
from typer.testing import CliRunner

import handoff.cli
from handoff.cli import app, main, with_inspect_default

ORDER = ["chat", "run", "inspect", "check", "diagram", "diff", "migrate", "new"]


def listed(help_text: str) -> list[str]:
    """The command names under ``Commands:`` in ``help_text``, in the order shown."""
    return [line.split()[0] for line in help_text.split("Commands:")[1].strip().splitlines()]


def test_help_lists_the_commands_in_their_order() -> None:
    assert list(get_command(app).commands) == ORDER  # type: ignore[attr-defined]
    assert listed(CliRunner().invoke(app, ["--help"]).output) == ORDER


def test_the_package_keeps_its_public_names() -> None:
    assert sorted(handoff.cli.__all__) == ["app", "main", "with_inspect_default"]
    assert callable(main) and with_inspect_default(["--inspect"]) == ["--inspect=127.0.0.1:8765"]


def test_python_dash_m_runs_the_command() -> None:
    done = subprocess.run([sys.executable, "-m", "handoff.cli", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: python -m handoff.cli [OPTIONS] COMMAND")
    assert listed(done.stdout) == ORDER
