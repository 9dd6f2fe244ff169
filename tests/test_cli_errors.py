"""Every reference a user types wrong is one ``error:`` line on stderr and exit 2.

``handoff check`` on a module that exits or prints at import, ``handoff diff`` from a
folder that did not exist at the revision, and a revision whose module never finishes
importing. (``chat --script`` / ``run console --script`` references are in
tests/test_console.py; missing secrets name what needs them in tests/test_worker.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from handoff import flowref
from handoff.cli import app

from .ops_support import REPO

FLOW = textwrap.dedent('''
    from handoff import Context, Flow, State


    class Call(Context):
        pass


    class Only(State[Call]):
        """The one state."""

        instructions = "Hi."


    flow = Flow("tiny", context=Call, initial=Only, states=[Only], final=[Only])
''')


def _one_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "handoff.cli", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "tinyflow.py").write_text(FLOW)
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(0)\n")
    (tmp_path / "chatty.py").write_text('print("hello from import")\n' + FLOW)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_check_of_a_module_that_exits_at_import_is_a_load_error(project: Path) -> None:
    result = CliRunner().invoke(app, ["check", "exits:flow"])
    assert result.exit_code == 2
    assert "exits" in _one_error(result.stderr) and "sys.exit(0)" in result.stderr


def test_check_json_stays_json_when_the_module_prints_at_import(project: Path) -> None:
    result = CliRunner().invoke(app, ["check", "chatty:flow", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # the module's print went to stderr
    assert report["flow"] == "chatty:flow" and report["errors"] == 0
    assert "hello from import" in result.stderr


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "GIT_AUTHOR_NAME": "t",
                        "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t"})


def test_diff_from_a_folder_absent_at_the_revision_is_one_line(project: Path) -> None:
    _git(project, "init", "-q")
    _git(project, "add", "tinyflow.py")
    _git(project, "commit", "-qm", "flow")
    sub = project / "later"
    sub.mkdir()
    (sub / "tinyflow.py").write_text(FLOW)
    proc = _run("diff", "HEAD:tinyflow:flow", "tinyflow:flow", cwd=sub)
    assert proc.returncode == 2
    assert "this folder (later) did not exist at HEAD" in _one_error(proc.stderr)


def test_diff_whose_module_hangs_at_the_revision_times_out_in_one_line(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "hangs.py").write_text("import threading\nthreading.Event().wait()\n")
    _git(project, "init", "-q")
    _git(project, "add", "hangs.py", "tinyflow.py")
    _git(project, "commit", "-qm", "flows")
    monkeypatch.setattr(flowref, "LOADER_TIMEOUT", 3.0)
    result = CliRunner().invoke(app, ["diff", "HEAD:hangs:flow", "tinyflow:flow"])
    assert result.exit_code == 2
    assert "took more than 3 s" in _one_error(result.stderr)


def test_diff_of_a_module_that_exits_at_the_revision_is_one_line(project: Path) -> None:
    _git(project, "init", "-q")
    _git(project, "add", "exits.py", "tinyflow.py")
    _git(project, "commit", "-qm", "flows")
    result = CliRunner().invoke(app, ["diff", "HEAD:exits:flow", "tinyflow:flow"])
    assert result.exit_code == 2
    assert "exits called sys.exit(0) while being imported" in _one_error(result.stderr)
