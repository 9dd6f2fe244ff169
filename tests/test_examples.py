"""The README's example and the demo run as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_example_is_the_file_and_runs() -> None:
    source = (ROOT / "examples/readme/hello.py").read_text()
    readme = (ROOT / "README.md").read_text()
    body = source.split("\n\n\nif __name__")[0]
    for block in body.split("\n\n\n"):
        lines = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("import asyncio")]
        for line in lines:
            assert line in readme, f"README example drifted from examples/readme/hello.py: {line!r}"
    out = subprocess.run([sys.executable, "-m", "examples.readme.hello"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "Helper Ann"


def test_demo_visits_every_state_and_shows_refusals(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "examples.callcenter.demo"], cwd=ROOT,
                         capture_output=True, text=True, timeout=180,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.splitlines()[0].startswith("LLM: offline")
    for edge in ("Greeter → Triage", "Triage → Billing", "Billing → Wrapup", "Wrapup → Escalation"):
        assert edge in text
    assert "the account is not verified yet" in text and "at most 100.00" in text
    assert '"refund_ticket": "R-9001"' in text


def test_callcenter_worker_entrypoint_checks_its_secrets_before_starting(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "examples.callcenter.worker", "start"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HANDOFF_SECRETS": "env"})
    assert out.returncode == 2, out.stderr
    assert ("missing secrets: LIVEKIT_URL (for the LiveKit server connection), LIVEKIT_API_KEY "
            "(for the LiveKit server connection), LIVEKIT_API_SECRET (for the LiveKit server "
            "connection), OPENAI_API_KEY (for tier 'fast' (LLM))") in out.stderr
