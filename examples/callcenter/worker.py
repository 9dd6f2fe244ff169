"""The call centre as a LiveKit worker: ``python -m examples.callcenter.worker start``.

Exactly ``handoff run examples.callcenter:flow start`` (what deploy/Dockerfile runs):
LiveKit's ``AgentServer``, one job per room, Silero VAD prewarmed per process, keys and
LiveKit credentials from the secrets chain (docs/deploy.md). Modes: console, dev, start.
"""

from __future__ import annotations

import sys

from handoff.cli import app

FLOW = "examples.callcenter:flow"


def main(argv: list[str]) -> None:
    app(["run", FLOW, *(argv or ["dev"])], prog_name="callcenter-worker")


if __name__ == "__main__":
    main(sys.argv[1:])
