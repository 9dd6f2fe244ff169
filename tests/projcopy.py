"""A throwaway copy of this project in its own git repository, for tests that edit a flow.

Tests that change ``examples/callcenter/flow.py`` do it in a copy under ``tmp_path``
(never in the working tree) and run the real ``handoff`` command there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("handoff", "examples", "pyproject.toml", "diagrams")
FLOW_FILE = Path("examples/callcenter/flow.py")

# A second version of the call-centre flow: one state added (Survey) with the transition
# into it, one state changed (Billing's tier), one guard changed (open_refund), one global
# transition removed (escalate_to_human). Everything else stays as it was.
EDITS: list[tuple[str, str]] = [
    ('    """Explains charges and opens refunds up to the caller\'s limit."""\n\n'
     "    backend = BACKEND\n",
     '    """Explains charges and opens refunds up to the caller\'s limit."""\n\n'
     "    backend = BACKEND\n    tier: ClassVar[str] = \"fast\"\n"),
    ("when=lambda c, amount, reason: 0 < amount <= c.refund_limit,",
     "when=lambda c, amount, reason: 0 < amount <= c.refund_limit / 2,"),
    ("    @function_tool\n    async def end_call(",
     "    @transition(to=\"Survey\")\n"
     "    async def offer_survey(self, ctx: RunContext[Call]) -> None:\n"
     '        """Call when the caller agrees to a one-question survey."""\n\n'
     "    @function_tool\n    async def end_call("),
    ("class Escalation(base.Escalation):",
     "class Survey(State[Call]):\n"
     '    """Asks one satisfaction question."""\n\n'
     '    instructions = "Ask how satisfied the caller is, from 1 to 5."\n\n\n'
     "class Escalation(base.Escalation):"),
    ("states=[Greeter, Triage, Billing, Wrapup, Escalation],\n    final=[Wrapup, Escalation],",
     "states=[Greeter, Triage, Billing, Wrapup, Survey, Escalation],\n"
     "    final=[Wrapup, Survey, Escalation],"),
    ("global_transitions=[escalate_to_human],", "global_transitions=[],"),
]


def copy_project(dest: Path, *, git: bool = True) -> Path:
    """Copy the project's flow-relevant files to ``dest`` and commit them (branch ``base``)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    if git:
        for args in (["init", "-q", "-b", "base"], ["add", "-A"],
                     ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"]):
            subprocess.run(["git", *args], cwd=dest, check=True, capture_output=True)
    return dest


def edit_flow(project: Path, edits: list[tuple[str, str]] = EDITS) -> None:
    """Apply ``edits`` to the call-centre flow of ``project`` (each must apply exactly once)."""
    path = project / FLOW_FILE
    text = path.read_text()
    for old, new in edits:
        assert text.count(old) == 1, f"edit does not apply: {old!r}"
        text = text.replace(old, new)
    path.write_text(text)


def run_handoff(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m handoff.cli ARGS`` in ``project``, that copy's handoff first on the path."""
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run([sys.executable, "-m", "handoff.cli", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)
