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
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.ops_support"]

logging.getLogger("livekit.agents").setLevel(logging.CRITICAL)


@pytest.fixture(scope="module")
def quiet_handoff_logs() -> Iterator[None]:
    """handoff's own log lines muted for one module's tests (thousands of generated moves
    log their refusals), and restored after it: a module that set the level when imported
    would silence the log checks of every module that happened to share its worker."""
    logger = logging.getLogger("handoff")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)

_CHECKOUT = Path(__file__).resolve().parent.parent
SCRATCH = Path(tempfile.gettempdir()) / "handoff-tests" / hashlib.sha256(
    str(_CHECKOUT).encode()).hexdigest()[:12]
"""Where this checkout's test runs keep what they would otherwise write into the tree."""
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(SCRATCH / "hypothesis"))
