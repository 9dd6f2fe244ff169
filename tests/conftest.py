"""Shared pytest setup: quiet LiveKit's per-tool-error logging in test output, and keep
test runs from writing into the work tree.

Hypothesis keeps its example database in ``.hypothesis/`` of the current directory; here it
goes to a folder of this checkout under the system's temporary directory (kept between
runs, so a failure found once is replayed first next time). ``tests/test_worktree_clean.py``
checks that a run of tests leaves the tree as it was.

Fixtures shared by the operations tests (a real redis-server, fresh metric
registries, the call-centre flow with its observers restored) live in
``tests/ops_support.py``, loaded as a plugin.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

pytest_plugins = ["tests.ops_support"]

logging.getLogger("livekit.agents").setLevel(logging.CRITICAL)

_CHECKOUT = Path(__file__).resolve().parent.parent
SCRATCH = Path(tempfile.gettempdir()) / "handoff-tests" / hashlib.sha256(
    str(_CHECKOUT).encode()).hexdigest()[:12]
"""Where this checkout's test runs keep what they would otherwise write into the tree."""
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(SCRATCH / "hypothesis"))
