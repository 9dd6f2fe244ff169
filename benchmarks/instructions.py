"""Instructions per turn: what handoff adds, counted by valgrind instead of timed.

The turn benchmark (:mod:`benchmarks.handoff_turn`) times each turn with the event-loop
thread's CPU clock, which also counts what the rest of the machine does to the caches,
and its per-pair differences spread over hundreds of µs. This counts the instructions the
event-loop thread executes (valgrind's callgrind, main thread only, ``PYTHONHASHSEED=0``):
two runs of the same command differ by a few thousand instructions in ten billion.

For each side (raw LiveKit, handoff) and step kind (handoff turn, ordinary-tool turn) it
runs the same process twice, with 0 and with ``--turns`` measured turns after the same
warm-up, and reports the difference ÷ turns: the instructions of one turn, start-up and
warm-up cancelled. Needs ``valgrind`` (Debian package); about 1.5 min per run, six runs.
Not part of ``make bench`` (no target is judged on it): it says whether a gap in CPU time
is code that runs or how the code runs (cache misses, the machine's load).

    python -m benchmarks.instructions [--turns 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from pathlib import Path

from ._common import ROOT, quiet_livekit
from ._flows import ring_flow
from .handoff_turn import _turn, flow_side, raw_side

SIDES = ("raw", "handoff")
KINDS = ("handoff", "ordinary")
WARMUP = 20


async def play(side: str, kind: str, turns: int) -> None:
    """The warm-up rounds, then ``turns`` turns of ``kind`` on one side."""
    async with AsyncExitStack() as stack:
        s = await (raw_side(stack) if side == "raw" else flow_side(stack, "handoff", ring_flow()))
        for i in range(WARMUP):
            await _turn(s, "handoff", f"go w{i}", False)
            await _turn(s, "ordinary", f"look w{i}", False)
        for i in range(turns):
            await _turn(s, kind, f"{'go' if kind == 'handoff' else 'look'} {i}", False)


def count(side: str, kind: str, turns: int, folder: Path) -> int:
    """Instructions the main thread of ``play(side, kind, turns)`` executes, start to end."""
    out = folder / f"{side}.{kind}.{turns}"
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(ROOT)}
    subprocess.run(
        ["valgrind", "--tool=callgrind", "--separate-threads=yes",
         f"--callgrind-out-file={out}", sys.executable, "-m", "benchmarks.instructions",
         "--play", side, kind, str(turns)],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    main_thread = folder / f"{out.name}-01"
    for line in main_thread.read_text(errors="replace").splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no summary in {main_thread}")


def measure(turns: int) -> dict[str, dict[str, float]]:
    """Instructions per turn, by side and kind."""
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        folder = Path(tmp)
        jobs = {(side, kind, n): pool.submit(count, side, kind, n, folder)
                for side in SIDES for kind in KINDS for n in (0, turns) if n or kind == KINDS[0]}
        total = {key: job.result() for key, job in jobs.items()}
    return {side: {kind: (total[side, kind, turns] - total[side, KINDS[0], 0]) / turns
                   for kind in KINDS} for side in SIDES}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=60, help="measured turns per run")
    parser.add_argument("--play", nargs=3, metavar=("SIDE", "KIND", "TURNS"),
                        help=argparse.SUPPRESS)  # one run, inside valgrind
    args = parser.parse_args(argv)
    quiet_livekit()
    if args.play:
        side, kind, turns = args.play
        asyncio.run(play(side, kind, int(turns)))
        return
    if args.turns < 1:
        parser.exit(2, "error: --turns must be at least 1\n")
    if shutil.which("valgrind") is None:
        parser.exit(2, "error: valgrind is not installed (apt-get install valgrind)\n")
    per_turn = measure(args.turns)
    print(f"instructions per turn, event-loop thread ({args.turns} turns, valgrind callgrind)")
    for kind in KINDS:
        raw, ours = per_turn["raw"][kind], per_turn["handoff"][kind]
        print(f"  {kind:8s} turn: raw LiveKit {raw / 1e6:7.3f} M, handoff {ours / 1e6:7.3f} M, "
              f"handoff adds {(ours - raw) / 1e3:+8.1f} k ({(ours / raw - 1) * 100:+.2f} %)")


if __name__ == "__main__":
    main()
