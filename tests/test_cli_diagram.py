"""The ``check``, ``diagram`` and ``diff`` commands: exit codes, stale diagrams, git diffs.

Commands that must see an edited flow run as real subprocesses in a copy of the
project under ``tmp_path`` (fresh imports, a real git repository); the rest run
in-process through typer's runner.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from handoff.cli import app
from handoff.diagram_diff import COLORS

from .projcopy import ROOT, copy_project, edit_flow, run_handoff

runner = CliRunner()
CALLCENTER = "examples.callcenter.flow:flow"


def test_committed_diagrams_are_current(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make test` fails here when diagrams/ is stale: run `make diagrams`."""
    monkeypatch.chdir(ROOT)
    result = runner.invoke(app, ["diagram", "examples", "-o", "diagrams", "--check"])
    assert result.exit_code == 0, result.output
    assert (ROOT / "diagrams" / "callcenter.svg").is_file()


# -- check ------------------------------------------------------------------------------
@pytest.fixture
def flow_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], str]:
    """Write a module of flows into tmp_path and return its (unique) name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)

    def write(body: str) -> str:
        name = f"flows_{tmp_path.name.replace('-', '_')}"
        (tmp_path / f"{name}.py").write_text(
            "from tests.flowgen import make_flow, make_state, make_transition\n"
            + textwrap.dedent(body))
        return name

    return write


def test_check_clean_flow_exits_0() -> None:
    result = runner.invoke(app, ["check", CALLCENTER, "--strict"])
    assert result.exit_code == 0, result.output
    assert "ok (5 states, 4 transitions)" in result.output


def test_check_warnings_exit_0_and_1_with_strict(flow_module: Callable[[str], str]) -> None:
    module = flow_module("""
        flow = make_flow({"A": [("go", "B")], "B": [], "Lost": [("x", "B")]},
                         initial="A", final=["B"])
    """)
    result = runner.invoke(app, ["check", f"{module}:flow"])
    assert result.exit_code == 0, result.output
    assert "warning [unreachable] Lost:" in result.output
    strict = runner.invoke(app, ["check", f"{module}:flow", "--strict", "--format", "json"])
    assert strict.exit_code == 1
    report = json.loads(strict.output)
    assert report["errors"] == 1 and report["built"] is True
    assert report["findings"][0]["code"] == "unreachable"
    assert report["findings"][0]["state"] == "Lost"


def test_check_broken_flow_prints_its_findings_and_exits_1(
    flow_module: Callable[[str], str],
) -> None:
    module = flow_module("""
        flow = make_flow({"A": [("go", "Nowhere")]}, initial="A", final=["A"])
    """)
    result = runner.invoke(app, ["check", f"{module}:flow"])
    assert result.exit_code == 1, result.output
    assert "error [unknown-target] A.go:" in result.output
    report = json.loads(runner.invoke(app, ["check", f"{module}:flow", "--format", "json"]).output)
    assert report["built"] is False
    assert [(f["code"], f["state"], f["trigger"]) for f in report["findings"]] == [
        ("unknown-target", "A", "go")]


@pytest.mark.parametrize("ref", ["no_such_module_xyz:flow", "examples.callcenter.flow:nope",
                                 "examples.callcenter.flow:Call", "not-a-reference"])
def test_check_cannot_load_exits_2(ref: str) -> None:
    result = runner.invoke(app, ["check", ref])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output
    as_json = runner.invoke(app, ["check", ref, "--format", "json"])
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["loaded"] is False


# -- diagram ----------------------------------------------------------------------------
def test_diagram_to_stdout_and_bad_highlight() -> None:
    dot = runner.invoke(app, ["diagram", CALLCENTER, "-f", "dot"])
    assert dot.exit_code == 0 and dot.output.startswith("// flow callcenter")
    mermaid = runner.invoke(app, ["diagram", CALLCENTER, "-f", "mermaid", "--highlight", "Triage"])
    assert mermaid.exit_code == 0 and "class s_Triage active" in mermaid.output
    bad = runner.invoke(app, ["diagram", CALLCENTER, "-f", "dot", "--highlight", "Nowhere"])
    assert bad.exit_code == 2


def test_diagram_png_keeps_its_source_beside_it(tmp_path: Path) -> None:
    out = tmp_path / "pics" / "cc.png"
    result = runner.invoke(app, ["diagram", CALLCENTER, "-f", "png", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert out.with_suffix(".dot").read_text().startswith("// flow callcenter")
    check = runner.invoke(app, ["diagram", CALLCENTER, "-f", "png", "-o", str(out), "--check"])
    assert check.exit_code == 0, check.output
    out.with_suffix(".dot").write_text("// flow callcenter; edited by hand\n")
    check = runner.invoke(app, ["diagram", CALLCENTER, "-f", "png", "-o", str(out), "--check"])
    assert check.exit_code == 1 and "differs" in check.output


def test_check_fails_after_a_flow_edit_and_passes_after_rerendering(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "proj", git=False)
    assert run_handoff(project, "diagram", "examples", "--check").returncode == 0

    edit_flow(project)
    stale = run_handoff(project, "diagram", "examples", "--check")
    assert stale.returncode == 1, stale.stderr
    assert "callcenter.dot differs" in stale.stdout

    rendered = run_handoff(project, "diagram", "examples")
    assert rendered.returncode == 0, rendered.stderr
    assert run_handoff(project, "diagram", "examples", "--check").returncode == 0
    svg = ET.parse(project / "diagrams" / "callcenter.svg").getroot()
    assert "Survey" in {t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")}

    # a diagram kept for a flow that no longer exists is stale too
    (project / "diagrams" / "oldflow.dot").write_text(
        "// flow oldflow v1; generated by handoff, do not edit\n")
    orphan = run_handoff(project, "diagram", "examples", "--check")
    assert orphan.returncode == 1 and "oldflow" in orphan.stdout


# -- diff -------------------------------------------------------------------------------
@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository: branch ``base`` holds the example, the working tree the edit."""
    project = copy_project(tmp_path / "repo")
    edit_flow(project)
    return project


EXPECTED_ROWS = [
    "| 🟠 changed | state `Billing` | tier: smart → fast |",
    "| 🟢 added | state `Survey` | Asks one satisfaction question.; tier fast |",
    "| 🔴 removed | transition `any state.escalate_to_human → Escalation` |  |",
    "| 🟠 changed | transition `Billing.open_refund → Wrapup` | guard: 0 < amount <= "
    "c.refund_limit → 0 < amount <= c.refund_limit / 2 |",
    "| 🟢 added | transition `Wrapup.offer_survey → Survey` |  |",
]


def test_diff_against_a_git_revision_lists_exactly_the_changes(repo: Path) -> None:
    before = (repo / "examples/callcenter/flow.py").read_text()
    result = run_handoff(repo, "diff", f"base:{CALLCENTER}", CALLCENTER, "--exit-code")
    # they differ, but no call in flight breaks: --exit-code fails only on that
    assert result.returncode == 0, result.stderr
    changes, in_flight = result.stdout.split("#### Calls in flight")
    rows = [r for r in changes.splitlines() if r.startswith("| ") and "---" not in r]
    assert rows[1:] == EXPECTED_ROWS
    verdicts = [r.split(" | ")[:2] for r in in_flight.splitlines() if r.startswith("| 🟠")]
    assert verdicts == [["| 🟠 tightens", "transition `any state.escalate_to_human` removed"],
                        ["| 🟠 tightens", "transition `Billing.open_refund` guard: 0 < amount "
                         "<= c.refund_limit → 0 < amount <= c.refund_limit / 2"]]
    assert "needs a migration" not in in_flight
    assert result.stdout.startswith("### Flow `callcenter`: base → working tree\n")
    assert "2 added, 1 removed, 2 changed, 6 unchanged" in result.stdout
    # the working tree was not touched
    assert (repo / "examples/callcenter/flow.py").read_text() == before
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True,
                            text=True, check=True).stdout
    assert status.split() == ["M", "examples/callcenter/flow.py"]


def test_diff_svg_between_two_revisions(repo: Path, tmp_path: Path) -> None:
    subprocess.run(["git", "checkout", "-q", "-b", "v2"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "v2"],
                   cwd=repo, check=True)
    out = tmp_path / "diff.svg"
    result = run_handoff(repo, "diff", f"base:{CALLCENTER}", f"v2:{CALLCENTER}", "-f", "svg",
                         "-o", str(out))
    assert result.returncode == 0, result.stderr
    svg = ET.parse(out).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    nodes = {}
    for g in svg.iter(f"{ns}g"):
        title = g.find(f"{ns}title")
        if g.get("class") in ("node", "edge") and title is not None:
            nodes[title.text] = {p.get("stroke") for p in g.iter() if p.tag.endswith("path")
                                 or p.tag.endswith("polygon")}
    assert COLORS["added"][0] in nodes["Survey"]
    assert COLORS["changed"][0] in nodes["Billing"]
    assert COLORS["unchanged"][0] in nodes["Greeter"]
    assert COLORS["removed"][0] in nodes["__any__->Escalation"]
    assert COLORS["changed"][0] in nodes["Billing->Wrapup"]
    assert COLORS["added"][0] in nodes["Wrapup->Survey"]
    same = run_handoff(repo, "diff", f"v2:{CALLCENTER}", CALLCENTER, "--exit-code")
    assert same.returncode == 0 and "No change" in same.stdout


def test_diff_unknown_revision_exits_2() -> None:
    result = runner.invoke(app, ["diff", f"no-such-rev:{CALLCENTER}", CALLCENTER])
    assert result.exit_code == 2
    assert "no-such-rev" in result.output


def test_diff_png_needs_an_output() -> None:
    result = runner.invoke(app, ["diff", CALLCENTER, CALLCENTER, "-f", "png"])
    assert result.exit_code == 2 and "-o" in result.output


def test_missing_graphviz_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` there
    result = runner.invoke(app, ["diagram", CALLCENTER, "-f", "svg", "-o", str(tmp_path / "x.svg")])
    assert result.exit_code == 2
    assert "Graphviz `dot` is not installed" in result.output
    # the text formats need no Graphviz
    assert runner.invoke(app, ["diagram", CALLCENTER, "-f", "mermaid"]).exit_code == 0
