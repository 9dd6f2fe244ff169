"""A test run writes nothing into the work tree.

A few tests that used to (the demo, whose Silero VAD makes onnxruntime write
``~/.cache/Microsoft/…`` into a HOME set to the checkout; hypothesis tests, whose example
database defaults to ``.hypothesis/`` in the current directory) run in a subprocess from
the checkout's root; every file under the root, ignored ones included, is the same before
and after. Left out: ``.git``, the venv, Python's ``__pycache__`` and pytest's own
``.pytest_cache`` (the subprocess runs without it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_COMPARED = {".git", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


def snapshot() -> dict[str, int]:
    """Each file under the root (ignored ones too) with its modification time."""
    found = {}
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in NOT_COMPARED and not d.endswith(".egg-info")]
        for name in files:
            path = Path(folder, name)
            found[str(path.relative_to(ROOT))] = path.stat().st_mtime_ns
    return found


def test_a_test_run_leaves_the_work_tree_as_it_was() -> None:
    before = snapshot()
    env = {k: v for k, v in os.environ.items() if k not in ("HYPOTHESIS_STORAGE_DIRECTORY",
                                                            "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
         "tests/test_examples.py", "tests/test_validate.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    after = snapshot()
    written = sorted(p for p in after if before.get(p) != after[p])
    assert not written, f"the test run wrote into the work tree: {written[:20]}"
    tracked = subprocess.run(["git", "ls-files", ".cache", ".hypothesis"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    assert tracked == "", f"caches are tracked: {tracked}"
